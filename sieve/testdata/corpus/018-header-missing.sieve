require "fileinto";
if header :contains "X-Missing" "" { fileinto "Wrong"; }
