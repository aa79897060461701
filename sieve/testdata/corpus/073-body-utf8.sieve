require ["body", "fileinto"];
if body :contains "café beans" { fileinto "Cafe"; }
