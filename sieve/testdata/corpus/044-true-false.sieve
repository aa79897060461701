require "fileinto";
if false { fileinto "False"; }
if true { fileinto "True"; }
