require "fileinto";
if address :localpart :is "cc" "carol" { fileinto "Carol"; }
