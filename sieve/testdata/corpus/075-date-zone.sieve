require ["date", "fileinto", "variables"];
if date :zone "+0200" :matches "date" "hour" "*" { fileinto "H-${1}"; }
