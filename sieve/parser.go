package sieve

import "strings"

// argKind is the kind of a command or test argument (RFC 5228 §2.6).
type argKind int

const (
	argString argKind = iota // a single string (a one-element string list)
	argList                  // a bracketed string list
	argNumber
	argTag
)

// Arg is one argument as written: a tag, a number or a string list.
type Arg struct {
	Pos  Pos
	Kind argKind
	Tag  string   // lower-cased, without the colon, for argTag
	Num  int64    // for argNumber
	Strs []string // for argString and argList
}

// Test is one test (RFC 5228 §2.9/§5) with its arguments and nested tests.
type Test struct {
	Pos   Pos
	Name  string // lower-cased identifier
	Args  []Arg
	Tests []*Test // allof/anyof/not
	c     checked
}

// Command is one command (RFC 5228 §2.9/§3/§4) with its arguments, its
// test (if, elsif) and its block.
type Command struct {
	Pos   Pos
	Name  string
	Args  []Arg
	Tests []*Test
	Block []*Command
	// HasBlock tells a command with an empty block from one ended by ';'.
	HasBlock bool
	c        checked
}

// maxNesting bounds blocks and test lists so that a hostile script cannot
// exhaust the stack while parsing or running.
const maxNesting = 64

// parser builds the syntax tree of RFC 5228 §8.2 from tokens.
type parser struct {
	lx    *lexer
	tok   token
	depth int
}

// parseTree parses a whole script into its top-level commands.
func parseTree(src []byte) ([]*Command, error) {
	p := &parser{lx: newLexer(src)}
	if err := p.nextTok(); err != nil {
		return nil, err
	}
	cmds, err := p.commands()
	if err != nil {
		return nil, err
	}
	if p.tok.Kind != tokEOF {
		return nil, errAt(p.tok.Pos, "unexpected %s: no block to close", p.tok.Kind)
	}
	return cmds, nil
}

func (p *parser) nextTok() error {
	t, err := p.lx.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

// commands = *command (§8.2), up to '}' or the end of the script.
func (p *parser) commands() ([]*Command, error) {
	var cmds []*Command
	for p.tok.Kind != tokEOF && p.tok.Kind != tokRBrace {
		c, err := p.command()
		if err != nil {
			return nil, err
		}
		cmds = append(cmds, c)
	}
	return cmds, nil
}

// command = identifier arguments (";" / block) (§8.2).
func (p *parser) command() (*Command, error) {
	if p.tok.Kind != tokIdent {
		return nil, errAt(p.tok.Pos, "expected a command, found %s", p.tok.Kind)
	}
	c := &Command{Pos: p.tok.Pos, Name: strings.ToLower(p.tok.Text)}
	if err := p.nextTok(); err != nil {
		return nil, err
	}
	args, tests, err := p.arguments()
	if err != nil {
		return nil, err
	}
	c.Args, c.Tests = args, tests
	switch p.tok.Kind {
	case tokSemicolon:
		return c, p.nextTok()
	case tokLBrace:
		c.HasBlock = true
		c.Block, err = p.block()
		return c, err
	}
	return nil, errAt(p.tok.Pos, "expected ';' or '{' after the arguments of %s, found %s", c.Name, p.tok.Kind)
}

// block = "{" commands "}" (§8.2).
func (p *parser) block() ([]*Command, error) {
	open := p.tok.Pos
	if err := p.enter(open); err != nil {
		return nil, err
	}
	defer p.leave()
	if err := p.nextTok(); err != nil {
		return nil, err
	}
	cmds, err := p.commands()
	if err != nil {
		return nil, err
	}
	if p.tok.Kind != tokRBrace {
		return nil, errAt(open, "unbalanced braces: block opened here is not closed")
	}
	return cmds, p.nextTok()
}

func (p *parser) enter(at Pos) error {
	p.depth++
	if p.depth > maxNesting {
		return errAt(at, "nesting deeper than %d levels", maxNesting)
	}
	return nil
}

func (p *parser) leave() { p.depth-- }

// arguments = *argument [ test / test-list ] (§8.2).
func (p *parser) arguments() ([]Arg, []*Test, error) {
	var args []Arg
	for {
		a, ok, err := p.argument()
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			break
		}
		args = append(args, a)
	}
	switch p.tok.Kind {
	case tokIdent:
		t, err := p.test()
		if err != nil {
			return nil, nil, err
		}
		return args, []*Test{t}, nil
	case tokLParen:
		tests, err := p.testList()
		return args, tests, err
	}
	return args, nil, nil
}

// argument = string-list / number / tag (§8.2); ok is false when the
// current token starts no argument.
func (p *parser) argument() (Arg, bool, error) {
	t := p.tok
	switch t.Kind {
	case tokTag:
		return Arg{Pos: t.Pos, Kind: argTag, Tag: strings.ToLower(t.Text)}, true, p.nextTok()
	case tokNumber:
		return Arg{Pos: t.Pos, Kind: argNumber, Num: t.Num}, true, p.nextTok()
	case tokString:
		return Arg{Pos: t.Pos, Kind: argString, Strs: []string{t.Text}}, true, p.nextTok()
	case tokLBracket:
		a, err := p.stringList()
		return a, true, err
	}
	return Arg{}, false, nil
}

// stringList = "[" string *("," string) "]" (§8.2).
func (p *parser) stringList() (Arg, error) {
	a := Arg{Pos: p.tok.Pos, Kind: argList}
	for {
		if err := p.nextTok(); err != nil {
			return a, err
		}
		if p.tok.Kind != tokString {
			return a, errAt(p.tok.Pos, "expected a string in the string list, found %s", p.tok.Kind)
		}
		a.Strs = append(a.Strs, p.tok.Text)
		if err := p.nextTok(); err != nil {
			return a, err
		}
		switch p.tok.Kind {
		case tokRBracket:
			return a, p.nextTok()
		case tokComma:
			continue
		}
		return a, errAt(p.tok.Pos, "expected ',' or ']' in the string list, found %s", p.tok.Kind)
	}
}

// test = identifier arguments (§8.2).
func (p *parser) test() (*Test, error) {
	if p.tok.Kind != tokIdent {
		return nil, errAt(p.tok.Pos, "expected a test, found %s", p.tok.Kind)
	}
	t := &Test{Pos: p.tok.Pos, Name: strings.ToLower(p.tok.Text)}
	if err := p.enter(t.Pos); err != nil {
		return nil, err
	}
	defer p.leave()
	if err := p.nextTok(); err != nil {
		return nil, err
	}
	args, tests, err := p.arguments()
	t.Args, t.Tests = args, tests
	return t, err
}

// testList = "(" test *("," test) ")" (§8.2).
func (p *parser) testList() ([]*Test, error) {
	var tests []*Test
	for {
		if err := p.nextTok(); err != nil {
			return nil, err
		}
		t, err := p.test()
		if err != nil {
			return nil, err
		}
		tests = append(tests, t)
		switch p.tok.Kind {
		case tokRParen:
			return tests, p.nextTok()
		case tokComma:
			continue
		}
		return nil, errAt(p.tok.Pos, "expected ',' or ')' in the test list, found %s", p.tok.Kind)
	}
}
