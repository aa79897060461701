require ["fileinto", "imap4flags"];
addflag "Junk";
if hasflag :is "junk" { fileinto "Spam"; }
