require "fileinto";
if header :is "subject" "nope" { fileinto "One"; }
elsif false { fileinto "Two"; }
else { fileinto "Three"; }
