redirect "bob@example.org";
redirect "bob@example.org";
redirect "carol@example.org";
