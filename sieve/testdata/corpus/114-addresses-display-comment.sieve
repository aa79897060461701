require "fileinto";
if address :is "from" "alice@example.com" { fileinto "Alice"; }
if address :localpart :is "cc" "bob" { fileinto "Bob"; }
