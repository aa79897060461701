require ["body", "fileinto"];
if body :content "text" :contains "base64 secret" { fileinto "B64"; }
