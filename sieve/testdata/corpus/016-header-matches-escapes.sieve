require "fileinto";
if header :matches "subject" "Price \\*50% off\\*\\? *" { fileinto "Escaped"; }
if header :matches "subject" "Price \\*5?% off\\*\\?" { fileinto "NoTail"; }
