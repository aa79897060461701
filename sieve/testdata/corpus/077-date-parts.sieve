require ["date", "fileinto", "variables"];
if date :zone "+0000" :matches "date" "julian" "*" { set "j" "${1}"; }
if date :zone "+0000" :matches "date" "weekday" "*" { set "w" "${1}"; }
if date :zone "+0000" :matches "date" "iso8601" "*" { set "i" "${1}"; }
if date :zone "+0000" :matches "date" "std11" "*" { set "s" "${1}"; }
fileinto "${j} ${w} ${i} ${s}";
