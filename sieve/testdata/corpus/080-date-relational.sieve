require ["date", "fileinto", "relational"];
if date :value "ge" :originalzone "date" "date" "2023-12-31" { fileinto "Recent"; }
