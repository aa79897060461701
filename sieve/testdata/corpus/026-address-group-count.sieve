require ["fileinto", "relational", "comparator-i;ascii-numeric"];
if address :count "eq" :comparator "i;ascii-numeric" "to" "3" { fileinto "Three"; }
