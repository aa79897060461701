require "copy";
redirect :copy "bob@example.org";
