require ["body", "fileinto"];
if body :raw :contains "Price =3D 10" { fileinto "Raw"; }
