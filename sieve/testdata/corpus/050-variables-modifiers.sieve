require ["fileinto", "variables"];
set :upper "a" "up";
set :lowerfirst "b" "LOW";
set :upperfirst :lower "c" "hELLO";
set :length "d" "four";
set :quotewildcard "e" "a*b?";
fileinto "${a}-${b}-${c}-${d}-${e}";
