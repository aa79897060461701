require ["fileinto", "imap4flags"];
addflag ["\\Seen", "Work"];
fileinto "Work";
removeflag "Work";
