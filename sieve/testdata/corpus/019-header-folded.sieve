require "fileinto";
if header :is "X-Folded" "one two three" { fileinto "Unfolded"; }
