require "fileinto";
if exists ["From", "X-Nope"] { fileinto "All"; } else { fileinto "Some"; }
