require "variables";
set "who" "bob";
redirect "${who}@example.org";
