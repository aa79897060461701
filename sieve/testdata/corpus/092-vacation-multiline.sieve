require ["vacation", "fileinto"];
fileinto "Seen";
vacation :subject "Away" text:
I am away.
..dotted line
.
;
