require ["fileinto", "variables"];
set "x" "Foo";
if string :is "${x}" "foo" { fileinto "StringOk"; }
