require "fileinto";
if header :is "Subject" "HELLO WORLD" { fileinto "Match"; }
