require "fileinto";
if header :comparator "i;octet" :is "Subject" "HELLO WORLD" { fileinto "Match"; }
else { fileinto "NoMatch"; }
