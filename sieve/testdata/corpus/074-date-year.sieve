require ["date", "fileinto"];
if date :is :originalzone "date" "year" "2024" { fileinto "Y2024"; }
