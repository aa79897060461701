require "fileinto";
if header :contains "from" "Jörg Müller" { fileinto "Joerg"; }
