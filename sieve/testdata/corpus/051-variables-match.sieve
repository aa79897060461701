require ["fileinto", "variables"];
if header :matches "subject" "* *" { fileinto "S-${2}-${1}-${0}"; }
