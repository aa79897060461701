require ["subaddress", "fileinto"];
if address :detail "to" "orders" { fileinto "Orders"; }
