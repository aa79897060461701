require "x-postline-nonexistent";
