require ["fileinto", "imap4flags"];
fileinto :flags "a" "Same";
fileinto :flags "b" "Same";
