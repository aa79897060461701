require "fileinto";
if address :all :is "from" "ALICE@example.com" { fileinto "Alice"; }
