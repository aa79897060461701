require ["fileinto", "variables"];
set "x" "Foo";
if string :is :comparator "i;ascii-casemap" "${x}" "foo" { fileinto "StringOk"; }
if string :is :comparator "i;octet" "${x}" "foo" { fileinto "Wrong"; }
