require ["body", "fileinto"];
if body :text :contains "fake pdf" { fileinto "Wrong"; } else { fileinto "Right"; }
