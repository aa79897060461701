require "fileinto";
if true {
  if header :contains "subject" "hello" {
    fileinto "A";
    stop;
  }
  fileinto "B";
}
fileinto "C";
