require "ereject";
ereject "Not wanted here.";
