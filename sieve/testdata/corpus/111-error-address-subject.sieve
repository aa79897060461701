if address :is "subject" "x" { keep; }
