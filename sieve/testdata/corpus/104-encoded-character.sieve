require ["fileinto", "encoded-character"];
fileinto "${hex:41 42}${unicode:263a}";
