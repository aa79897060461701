require ["fileinto", "imap4flags", "variables"];
setflag "myvar" "A B";
addflag "myvar" "C";
if hasflag :contains "myvar" "C" { fileinto :flags "${myvar}" "Var"; }
