require "fileinto"; # hash comment
/* bracket
   comment */ if /* inline */ true { fileinto /* x */ "Commented"; }
