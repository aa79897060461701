require ["envelope", "fileinto", "variables"];
if envelope :matches "from" "*@example.*" { fileinto "${1}"; }
