package sieve

import (
	"errors"
	"testing"
)

func TestLexerTokens(t *testing.T) {
	src := "if :Is 10K \"a\\\"b\\\\c\" [\"x\",\"y\"];\n# comment\n/* block\n */ text: # note\nline1\n..dot\n.\n{ } ( ) 2M 1G 7"
	toks, err := newLexer([]byte(src)).all()
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		kind      tokKind
		text      string
		num       int64
		line, col int
	}{
		{tokIdent, "if", 0, 1, 1}, {tokTag, "Is", 0, 1, 4}, {tokNumber, "", 10240, 1, 8},
		{tokString, `a"b\c`, 0, 1, 12}, {tokLBracket, "", 0, 1, 22}, {tokString, "x", 0, 1, 23},
		{tokComma, "", 0, 1, 26}, {tokString, "y", 0, 1, 27}, {tokRBracket, "", 0, 1, 30},
		{tokSemicolon, "", 0, 1, 31}, {tokString, "line1\r\n.dot\r\n", 0, 4, 5},
		{tokLBrace, "", 0, 8, 1}, {tokRBrace, "", 0, 8, 3}, {tokLParen, "", 0, 8, 5},
		{tokRParen, "", 0, 8, 7}, {tokNumber, "", 2 << 20, 8, 9}, {tokNumber, "", 1 << 30, 8, 12},
		{tokNumber, "", 7, 8, 15}, {tokEOF, "", 0, 8, 16},
	}
	if len(toks) != len(want) {
		t.Fatalf("got %d tokens, want %d: %+v", len(toks), len(want), toks)
	}
	for i, w := range want {
		g := toks[i]
		if g.Kind != w.kind || g.Text != w.text || g.Num != w.num || g.Pos != (Pos{w.line, w.col}) {
			t.Errorf("token %d = %v %q %d at %v, want %v %q %d at %d:%d", i, g.Kind, g.Text, g.Num, g.Pos, w.kind, w.text, w.num, w.line, w.col)
		}
	}
}

// errCase is a script and where its first error must be reported.
type errCase struct {
	name, src string
	line, col int
}

func TestLexerErrors(t *testing.T) {
	cases := []errCase{
		{"unterminated string", "keep;\n  redirect \"bob@x", 2, 12},
		{"unterminated comment", "keep; /* never\nclosed", 1, 7},
		{"unterminated text", "keep;\nreject text:\nline\n", 2, 8},
		{"text without line break", "reject text: x", 1, 8},
		{"bad number", "if size :over 10X { keep; }", 1, 15},
		{"number too large", "if size :over 99999999999999999999 { keep; }", 1, 15},
		{"bare colon", "if header : \"a\" \"b\" {}", 1, 11},
		{"bad character", "keep; @", 1, 7},
	}
	for _, c := range cases {
		_, err := newLexer([]byte(c.src)).all()
		assertErrAt(t, c, err)
	}
}

func assertErrAt(t *testing.T, c errCase, err error) {
	t.Helper()
	var se *SyntaxError
	if !errors.As(err, &se) {
		t.Errorf("%s: got %v, want a SyntaxError", c.name, err)
		return
	}
	if se.Line != c.line || se.Column != c.col {
		t.Errorf("%s: error at %d:%d (%s), want %d:%d", c.name, se.Line, se.Column, se.Msg, c.line, c.col)
	}
}
