require "imap4flags";
setflag ["\\Seen", "\\Flagged"];
removeflag "\\Seen";
keep;
