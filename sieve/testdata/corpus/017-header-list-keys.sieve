require "fileinto";
if header :contains ["To", "Cc"] ["nobody", "carol"] { fileinto "Friends"; }
