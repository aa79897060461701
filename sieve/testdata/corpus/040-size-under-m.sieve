require "fileinto";
if size :under 1M { fileinto "UnderMega"; }
