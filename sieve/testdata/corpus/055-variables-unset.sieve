require ["fileinto", "variables"];
fileinto "a${nope}b";
