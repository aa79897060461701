package sieve

import (
	"fmt"
	"strings"
)

// Pos is a position in a script: 1-based line and column (column counts bytes).
type Pos struct {
	Line, Col int
}

func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Line, p.Col) }

// SyntaxError is one lexical, grammatical or check error in a script, at the
// position where the offending token starts.
type SyntaxError struct {
	Line, Column int
	Msg          string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("sieve: line %d:%d: %s", e.Line, e.Column, e.Msg)
}

func errAt(p Pos, format string, args ...any) *SyntaxError {
	return &SyntaxError{Line: p.Line, Column: p.Col, Msg: fmt.Sprintf(format, args...)}
}

// ErrorList is what Parse returns when a script is rejected: every error
// found, in script order. errors.As(err, &*SyntaxError) yields the first one.
type ErrorList []*SyntaxError

func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// Unwrap lets errors.As and errors.Is see each SyntaxError.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}
