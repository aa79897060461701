require ["fileinto", "relational"];
if header :value "lt" "subject" "Im" { fileinto "Before"; }
