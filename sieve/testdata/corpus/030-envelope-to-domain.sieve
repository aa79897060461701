require ["envelope", "fileinto"];
if envelope :domain :is "to" "EXAMPLE.NET" { fileinto "EnvNet"; }
