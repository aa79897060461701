require ["date", "fileinto"];
if date :is "date" "year" "2024" { fileinto "Dated"; } else { fileinto "Undated"; }
