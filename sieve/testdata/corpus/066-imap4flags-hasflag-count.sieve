require ["fileinto", "imap4flags", "relational", "comparator-i;ascii-numeric"];
setflag "A B C";
if hasflag :count "eq" :comparator "i;ascii-numeric" "3" { fileinto "ThreeFlags"; }
