require "reject";
keep;
reject "No.";
