package sieve

import (
	"testing"
)

func TestParseErrors(t *testing.T) {
	cases := []errCase{
		{"unterminated string", "require \"fileinto\";\nfileinto \"Inbox;\n", 2, 10},
		{"missing semicolon", "keep\ndiscard;", 2, 1},
		{"unbalanced open brace", "if true {\n  keep;\n", 1, 9},
		{"unbalanced close brace", "keep;\n}\n", 2, 1},
		{"bad tag", "if header :bogus \"subject\" \"x\" { keep; }", 1, 11},
		{"unknown command", "keep;\n  frobnicate;", 2, 3},
		{"unknown test", "if frob { keep; }", 1, 4},
		{"missing require", "keep;\nfileinto \"x\";", 2, 1},
		{"missing require for tag", "redirect :copy \"a@b.c\";", 1, 10},
		{"wrong argument count", "redirect;", 1, 1},
		{"too many arguments", "keep \"x\";", 1, 1},
		{"wrong argument kind", "if size :over \"big\" { keep; }", 1, 15},
		{"bad number", "if size :under 1Q { keep; }", 1, 16},
		{"unterminated text", "require \"reject\";\nreject text:\nno end\n", 2, 8},
		{"unterminated comment", "keep; /* open", 1, 7},
		{"require late", "keep;\nrequire \"fileinto\";", 2, 1},
		{"unknown capability", "require [\"fileinto\", \"regex\"];", 1, 9},
		{"elsif without if", "elsif true { keep; }", 1, 1},
		{"if without block", "if true;", 1, 1},
		{"if without test", "if { keep; }", 1, 1},
		{"conflicting tags", "if header :is :contains \"a\" \"b\" { keep; }", 1, 15},
		{"unknown comparator", "if header :comparator \"i;nope\" \"a\" \"b\" {}", 1, 23},
		{"numeric contains", "require \"comparator-i;ascii-numeric\";\nif header :contains :comparator \"i;ascii-numeric\" \"a\" \"1\" {}", 2, 33},
		{"bad relational", "require \"relational\";\nif header :value \"xx\" \"a\" \"1\" {}", 2, 18},
		{"address on subject", "if address \"subject\" \"x\" {}", 1, 12},
		{"bad date part", "require \"date\";\nif date \"date\" \"century\" \"x\" {}", 2, 16},
		{"bad zone", "require \"date\";\nif currentdate :zone \"CET\" \"year\" \"x\" {}", 2, 22},
		{"bad redirect address", "redirect \"not an address\";", 1, 10},
		{"tag after positional", "if header \"a\" :is \"b\" {}", 1, 15},
		{"string list missing bracket", "if header [\"a\" \"b\" {}", 1, 16},
		{"test list missing paren", "if anyof(true false) {}", 1, 15},
		{"nesting too deep", deepScript(70), 1, 644},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.src))
		assertErrAt(t, c, err)
	}
}

func deepScript(n int) string {
	s := ""
	for i := 0; i < n; i++ {
		s += "if true { "
	}
	return s
}

func TestParseTree(t *testing.T) {
	s, err := Parse([]byte("require [\"fileinto\"];\nif anyof (true, not false) {\n  fileinto \"A\";\n} else { keep; }\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.cmds) != 3 {
		t.Fatalf("got %d top-level commands, want 3", len(s.cmds))
	}
	ifc := s.cmds[1]
	if ifc.Name != "if" || ifc.Pos != (Pos{2, 1}) || len(ifc.Tests) != 1 || len(ifc.Tests[0].Tests) != 2 {
		t.Errorf("if command parsed as %+v", ifc)
	}
	if f := ifc.Block[0]; f.Name != "fileinto" || f.Pos != (Pos{3, 3}) || f.Args[0].Strs[0] != "A" {
		t.Errorf("fileinto parsed as %+v", f)
	}
	if !s.Requires("fileinto") {
		t.Error("Requires(fileinto) = false")
	}
}

func TestParseCollectsAllCheckErrors(t *testing.T) {
	_, err := Parse([]byte("fileinto \"a\";\nfrob;\n"))
	list, ok := err.(ErrorList)
	if !ok || len(list) != 2 {
		t.Fatalf("got %v, want two errors", err)
	}
	if list[1].Line != 2 || list[1].Column != 1 {
		t.Errorf("second error at %d:%d, want 2:1", list[1].Line, list[1].Column)
	}
}
