require ["envelope", "subaddress", "fileinto"];
if envelope :user "to" "me" { fileinto "User"; }
