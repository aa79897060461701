require ["envelope", "fileinto"];
if envelope :is "from" "alice@example.com" { fileinto "EnvAlice"; }
