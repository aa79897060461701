require "fileinto";
if allof (header :contains "subject" "hello", address :is "from" "alice@example.com") { fileinto "Both"; }
