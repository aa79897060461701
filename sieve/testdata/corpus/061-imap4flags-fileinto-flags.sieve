require ["fileinto", "imap4flags"];
fileinto :flags "\\Answered $Label1" "Work";
