package sieve

import (
	"strings"
)

// tokKind is the kind of a lexical token (RFC 5228 §8.1).
type tokKind int

const (
	tokEOF tokKind = iota
	tokIdent
	tokTag
	tokNumber
	tokString // quoted-string or multi-line (text:) string
	tokLBracket
	tokRBracket
	tokLParen
	tokRParen
	tokLBrace
	tokRBrace
	tokComma
	tokSemicolon
)

func (k tokKind) String() string {
	switch k {
	case tokEOF:
		return "end of script"
	case tokIdent:
		return "identifier"
	case tokTag:
		return "tag"
	case tokNumber:
		return "number"
	case tokString:
		return "string"
	}
	return "'" + string("?[](){},;"[k-tokString]) + "'"
}

// token is one lexical token. Text holds the identifier, the tag without its
// colon, or the decoded string value; Num holds a number's value.
type token struct {
	Kind tokKind
	Pos  Pos
	Text string
	Num  int64
}

// maxNumber bounds numbers: RFC 5228 §2.4.1 asks for at least 2^31; we accept
// up to 2^53 so arithmetic on sizes can never overflow.
const maxNumber = int64(1) << 53

// lexer splits a script into tokens (RFC 5228 §8.1). It stops at the first
// error, which carries the position where the bad token starts.
type lexer struct {
	src       []byte
	off       int
	line, col int
}

func newLexer(src []byte) *lexer { return &lexer{src: src, line: 1, col: 1} }

func (l *lexer) pos() Pos { return Pos{l.line, l.col} }

func (l *lexer) peekByte(n int) byte {
	if l.off+n < len(l.src) {
		return l.src[l.off+n]
	}
	return 0
}

// advance moves one byte forward, keeping line and column.
func (l *lexer) advance() byte {
	c := l.src[l.off]
	l.off++
	if c == '\n' {
		l.line++
		l.col = 1
	} else {
		l.col++
	}
	return c
}

// all tokenizes the whole script (used by tests and the parser).
func (l *lexer) all() ([]token, error) {
	var toks []token
	for {
		t, err := l.next()
		if err != nil {
			return toks, err
		}
		toks = append(toks, t)
		if t.Kind == tokEOF {
			return toks, nil
		}
	}
}

// next returns the next token, skipping white space and comments (§8.1).
func (l *lexer) next() (token, error) {
	if err := l.skipSpace(); err != nil {
		return token{}, err
	}
	p := l.pos()
	if l.off >= len(l.src) {
		return token{Kind: tokEOF, Pos: p}, nil
	}
	c := l.src[l.off]
	switch {
	case c == '"':
		s, err := l.quoted()
		return token{Kind: tokString, Pos: p, Text: s}, err
	case c == ':':
		l.advance()
		if !isIdentStart(l.peekByte(0)) {
			return token{}, errAt(p, "expected a tag name after ':'")
		}
		return token{Kind: tokTag, Pos: p, Text: l.ident()}, nil
	case c >= '0' && c <= '9':
		n, err := l.number()
		return token{Kind: tokNumber, Pos: p, Num: n}, err
	case isIdentStart(c):
		return l.identOrText(p)
	}
	if k, ok := punct(c); ok {
		l.advance()
		return token{Kind: k, Pos: p}, nil
	}
	return token{}, errAt(p, "unexpected character %q", rune(c))
}

func punct(c byte) (tokKind, bool) {
	i := strings.IndexByte("[](){},;", c)
	if i < 0 {
		return 0, false
	}
	return []tokKind{tokLBracket, tokRBracket, tokLParen, tokRParen, tokLBrace, tokRBrace, tokComma, tokSemicolon}[i], true
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentChar(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

func (l *lexer) ident() string {
	start := l.off
	for l.off < len(l.src) && isIdentChar(l.src[l.off]) {
		l.advance()
	}
	return string(l.src[start:l.off])
}

// identOrText reads an identifier, or a multi-line string when the
// identifier is "text" directly followed by ':' (§2.4.2, §8.1).
func (l *lexer) identOrText(p Pos) (token, error) {
	id := l.ident()
	if strings.EqualFold(id, "text") && l.peekByte(0) == ':' {
		l.advance()
		s, err := l.multiline(p)
		return token{Kind: tokString, Pos: p, Text: s}, err
	}
	return token{Kind: tokIdent, Pos: p, Text: id}, nil
}

// skipSpace skips white space, hash comments and bracket comments (§8.1).
func (l *lexer) skipSpace() error {
	for l.off < len(l.src) {
		switch c := l.src[l.off]; {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			l.advance()
		case c == '#':
			l.skipLine()
		case c == '/' && l.peekByte(1) == '*':
			if err := l.bracketComment(); err != nil {
				return err
			}
		default:
			return nil
		}
	}
	return nil
}

func (l *lexer) skipLine() {
	for l.off < len(l.src) && l.src[l.off] != '\n' {
		l.advance()
	}
}

func (l *lexer) bracketComment() error {
	p := l.pos()
	l.advance()
	l.advance()
	for l.off < len(l.src) {
		if l.src[l.off] == '*' && l.peekByte(1) == '/' {
			l.advance()
			l.advance()
			return nil
		}
		l.advance()
	}
	return errAt(p, "unterminated comment: missing '*/'")
}

// number reads a decimal number with an optional K, M or G quantifier
// (§2.4.1: 2^10, 2^20 and 2^30).
func (l *lexer) number() (int64, error) {
	p := l.pos()
	var n int64
	for l.off < len(l.src) && l.src[l.off] >= '0' && l.src[l.off] <= '9' {
		n = n*10 + int64(l.advance()-'0')
		if n > maxNumber {
			return 0, errAt(p, "number too large")
		}
	}
	shift := 0
	switch l.peekByte(0) {
	case 'K', 'k':
		shift = 10
	case 'M', 'm':
		shift = 20
	case 'G', 'g':
		shift = 30
	}
	if shift > 0 {
		l.advance()
		if n > maxNumber>>shift {
			return 0, errAt(p, "number too large")
		}
		n <<= shift
	}
	if isIdentChar(l.peekByte(0)) {
		return 0, errAt(p, "invalid number: unexpected %q after digits", rune(l.peekByte(0)))
	}
	return n, nil
}

// quoted reads a quoted string. §2.4.2: "\\" and "\"" are the escapes; a
// backslash before any other character is dropped (the behaviour of the
// common implementations for this undefined case).
func (l *lexer) quoted() (string, error) {
	p := l.pos()
	l.advance()
	var b strings.Builder
	for l.off < len(l.src) {
		c := l.advance()
		switch c {
		case '"':
			return b.String(), nil
		case '\\':
			if l.off >= len(l.src) {
				break
			}
			b.WriteByte(l.advance())
		default:
			b.WriteByte(c)
		}
	}
	return "", errAt(p, "unterminated string: missing closing '\"'")
}

// multiline reads the rest of a "text:" string: optional white space or a
// hash comment up to the end of the line, then lines up to one holding only
// ".". §2.4.2: a leading "." on a line is removed (dot-stuffing). Lines end
// in CRLF in the value whatever the script used.
func (l *lexer) multiline(p Pos) (string, error) {
	for l.off < len(l.src) && (l.src[l.off] == ' ' || l.src[l.off] == '\t') {
		l.advance()
	}
	if l.peekByte(0) == '#' {
		l.skipLine()
	}
	if l.peekByte(0) == '\r' {
		l.advance()
	}
	if l.off >= len(l.src) || l.src[l.off] != '\n' {
		return "", errAt(p, "text: must be followed by a line break")
	}
	l.advance()
	var b strings.Builder
	for l.off < len(l.src) {
		line := l.readLine()
		if line == "." {
			return b.String(), nil
		}
		b.WriteString(strings.TrimPrefix(line, "."))
		b.WriteString("\r\n")
	}
	return "", errAt(p, "unterminated text: string: missing a line with a single '.'")
}

// readLine returns the next line without its line ending.
func (l *lexer) readLine() string {
	start := l.off
	for l.off < len(l.src) && l.src[l.off] != '\n' {
		l.advance()
	}
	line := string(l.src[start:l.off])
	if l.off < len(l.src) {
		l.advance()
	}
	return strings.TrimSuffix(line, "\r")
}
