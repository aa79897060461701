require "fileinto";
if header :contains "subject" "Grüße aus Köln und café" { fileinto "Decoded"; }
