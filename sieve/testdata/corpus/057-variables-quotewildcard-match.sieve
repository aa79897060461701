require ["fileinto", "variables"];
set :quotewildcard "pat" "Price *50% off*?";
if header :matches "subject" "${pat}*" { fileinto "Quoted"; }
