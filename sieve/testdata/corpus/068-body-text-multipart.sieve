require ["body", "fileinto"];
if body :text :contains "soft broken here. Price = 10" { fileinto "QP"; }
