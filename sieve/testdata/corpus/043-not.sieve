require "fileinto";
if not header :contains "subject" "nope" { fileinto "Not"; }
