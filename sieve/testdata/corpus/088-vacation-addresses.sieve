require "vacation";
vacation :addresses ["me.alias@example.net"] "I am away.";
