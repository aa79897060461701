require "fileinto";
if anyof (false, header :contains "subject" "nope", exists "x-spam-score") { fileinto "Any"; }
