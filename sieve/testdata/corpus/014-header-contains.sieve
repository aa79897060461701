require "fileinto";
if header :contains "subject" "lo wo" { fileinto "Match"; }
