require "fileinto";
if header :matches "subject" "*caf?" { fileinto "Cafe"; }
