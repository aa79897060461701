require "fileinto";
if header :matches "subject" "H?llo *" { fileinto "Match"; }
