require "fileinto";
if address :is "to" "ben@y.example" { fileinto "Group"; }
