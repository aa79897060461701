require ["date", "fileinto", "variables"];
if date :zone "-0130" :matches "date" "date" "*" { set "d" "${1}"; }
if date :zone "-0130" :matches "date" "time" "*" { set "t" "${1}"; }
if date :zone "-0130" :matches "date" "month" "*" { set "m" "${1}"; }
if date :zone "-0130" :matches "date" "day" "*" { set "dd" "${1}"; }
fileinto "${d} ${t} ${m} ${dd}";
