require ["fileinto", "variables"];
if header :matches "subject" "Hello *" { set "a" "${1}"; }
if header :matches "subject" "Nope *" { set "b" "x"; }
fileinto "${a}-${1}";
