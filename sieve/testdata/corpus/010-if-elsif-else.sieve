require "fileinto";
if header :is "subject" "nope" {
  fileinto "One";
} elsif header :contains "subject" "world" {
  fileinto "Two";
} else {
  fileinto "Three";
}
