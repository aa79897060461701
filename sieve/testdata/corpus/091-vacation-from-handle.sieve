require "vacation";
vacation :from "me@example.net" :handle "h1" :days 10 "Away.";
