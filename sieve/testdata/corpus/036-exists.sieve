require "fileinto";
if exists ["From", "Date", "X-Spam-Score"] { fileinto "All"; }
