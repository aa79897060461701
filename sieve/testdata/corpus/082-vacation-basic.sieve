require "vacation";
vacation :days 3 :subject "Away" "I am away until Monday.";
