require ["fileinto", "relational"];
if header :value "ne" :comparator "i;octet" "subject" "Hello world" { fileinto "Different"; } else { fileinto "Same"; }
