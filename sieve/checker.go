package sieve

import (
	"strings"
)

// checked is what the checker learns about one command or test: its
// arguments bound to their roles, and the match settings of a test.
type checked struct {
	tags map[string]Arg // tag name -> its argument (Kind argTag when it has none)
	pos  []*Arg         // positional arguments; leading optional ones may be nil
	m    matcher
}

// tag reports whether the tag was given.
func (c *checked) has(tag string) bool { _, ok := c.tags[tag]; return ok }

// checker validates a parsed script (RFC 5228 §3.2 require, §2.6 argument
// kinds, §2.7 comparators and match types, and each extension's syntax).
type checker struct {
	specs    map[string]*spec
	caps     map[string]bool
	required map[string]bool
	errs     ErrorList
}

func (c *checker) errorf(p Pos, format string, args ...any) {
	c.errs = append(c.errs, errAt(p, format, args...))
}

// needs reports an error unless the capability was required (§3.2: using an
// extension that was not required is an error).
func (c *checker) needs(p Pos, ext, what string) {
	if ext == "" || c.required[ext] {
		return
	}
	if ext == "vacation" && c.required["vacation-seconds"] {
		return
	}
	c.errorf(p, "%s requires the %q extension (missing require)", what, ext)
}

// commands checks a command list. §3.2: require only at the start of the
// script; §3.1: elsif and else only after if or elsif.
func (c *checker) commands(cmds []*Command, top bool) {
	prev, started := "", false
	for _, cmd := range cmds {
		if cmd.Name == "require" && (!top || started) {
			c.errorf(cmd.Pos, "require must come before any other command")
		}
		if cmd.Name != "require" {
			started = true
		}
		if (cmd.Name == "elsif" || cmd.Name == "else") && prev != "if" && prev != "elsif" {
			c.errorf(cmd.Pos, "%s without a preceding if", cmd.Name)
		}
		c.command(cmd)
		prev = cmd.Name
	}
}

func (c *checker) command(cmd *Command) {
	sp, ok := c.specs[cmd.Name]
	if !ok || sp.isTest {
		c.errorf(cmd.Pos, "unknown command %q", cmd.Name)
		return
	}
	c.needs(cmd.Pos, sp.ext, "command "+cmd.Name)
	cmd.c = c.bind(sp, cmd.Name, cmd.Pos, cmd.Args)
	c.testCount(sp, cmd.Name, cmd.Pos, cmd.Tests)
	for _, t := range cmd.Tests {
		c.test(t)
	}
	if sp.block && !cmd.HasBlock {
		c.errorf(cmd.Pos, "%s needs a block", cmd.Name)
	}
	if !sp.block && cmd.HasBlock {
		c.errorf(cmd.Pos, "%s takes no block: missing ';'", cmd.Name)
	}
	if cmd.Name == "require" {
		c.require(&cmd.c)
	}
	c.commands(cmd.Block, false)
	c.semantics(cmd.Name, &cmd.c)
}

func (c *checker) test(t *Test) {
	sp, ok := c.specs[t.Name]
	if !ok || !sp.isTest {
		c.errorf(t.Pos, "unknown test %q", t.Name)
		return
	}
	c.needs(t.Pos, sp.ext, "test "+t.Name)
	t.c = c.bind(sp, t.Name, t.Pos, t.Args)
	c.testCount(sp, t.Name, t.Pos, t.Tests)
	for _, sub := range t.Tests {
		c.test(sub)
	}
	c.matcher(t.Name, &t.c)
	c.semantics(t.Name, &t.c)
}

func (c *checker) testCount(sp *spec, name string, p Pos, tests []*Test) {
	switch {
	case sp.tests == 0 && len(tests) > 0:
		c.errorf(tests[0].Pos, "unexpected %q after %s: missing ';' or ','?", tests[0].Name, name)
	case sp.tests == 1 && len(tests) != 1:
		c.errorf(p, "%s needs exactly one test", name)
	case sp.tests == -1 && len(tests) == 0:
		c.errorf(p, "%s needs a test list", name)
	}
}

// require records the capabilities (§3.2); an unknown one is an error.
func (c *checker) require(ch *checked) {
	if len(ch.pos) == 0 || ch.pos[0] == nil {
		return // argument count already reported
	}
	a := ch.pos[0]
	for _, s := range a.Strs {
		ext := strings.ToLower(s)
		if !c.caps[ext] {
			c.errorf(a.Pos, "unsupported capability %q in require", s)
			continue
		}
		c.required[ext] = true
	}
}

// bind matches arguments against the spec: tags first (§2.6.2), then the
// positional arguments in order.
func (c *checker) bind(sp *spec, name string, p Pos, args []Arg) checked {
	if c.required["encoded-character"] {
		for i := range args {
			for k, str := range args[i].Strs {
				args[i].Strs[k] = decodeEncoded(str)
			}
		}
	}
	ch := checked{tags: map[string]Arg{}}
	groups := map[string]string{}
	i := 0
	for ; i < len(args) && args[i].Kind == argTag; i++ {
		i = c.bindTag(sp, name, args, i, &ch, groups)
	}
	c.bindPositional(sp, name, p, args[i:], &ch)
	return ch
}

func (c *checker) bindTag(sp *spec, name string, args []Arg, i int, ch *checked, groups map[string]string) int {
	a := args[i]
	ts, ok := sp.tags[a.Tag]
	if !ok {
		c.errorf(a.Pos, "unknown tag :%s for %s", a.Tag, name)
		return i
	}
	c.needs(a.Pos, ts.ext, "tag :"+a.Tag)
	if _, dup := ch.tags[a.Tag]; dup {
		c.errorf(a.Pos, "tag :%s given twice", a.Tag)
	}
	if g := ts.group; g != "" {
		if other, clash := groups[g]; clash && other != a.Tag {
			c.errorf(a.Pos, "tag :%s cannot be combined with :%s", a.Tag, other)
		}
		groups[g] = a.Tag
	}
	if !ts.hasArg {
		ch.tags[a.Tag] = a
		return i
	}
	if i+1 >= len(args) || !kindFits(ts.arg, args[i+1].Kind) {
		c.errorf(a.Pos, "tag :%s needs a %s argument", a.Tag, kindName(ts.arg))
		return i
	}
	ch.tags[a.Tag] = args[i+1]
	return i + 1
}

func (c *checker) bindPositional(sp *spec, name string, p Pos, args []Arg, ch *checked) {
	for _, a := range args {
		if a.Kind == argTag {
			c.errorf(a.Pos, "tag :%s must come before the other arguments of %s", a.Tag, name)
			return
		}
	}
	if len(args) < sp.minPos || len(args) > len(sp.pos) {
		c.errorf(p, "%s takes %s, got %d", name, countText(sp), len(args))
		return
	}
	ch.pos = make([]*Arg, len(sp.pos))
	skip := len(sp.pos) - len(args)
	for k := range args {
		a := &args[k]
		want := sp.pos[skip+k]
		if !kindFits(want, a.Kind) {
			c.errorf(a.Pos, "argument %d of %s must be a %s", k+1, name, kindName(want))
		}
		ch.pos[skip+k] = a
	}
}

func kindFits(want posKind, got argKind) bool {
	switch want {
	case posString:
		return got == argString
	case posList:
		return got == argString || got == argList
	}
	return got == argNumber
}

func kindName(k posKind) string {
	return [...]string{"string", "string list", "number"}[k]
}

func countText(sp *spec) string {
	if sp.minPos == len(sp.pos) {
		return plural(len(sp.pos))
	}
	return plural(sp.minPos) + " to " + plural(len(sp.pos))
}

func plural(n int) string {
	switch n {
	case 0:
		return "no positional argument"
	case 1:
		return "1 positional argument"
	}
	return string(rune('0'+n)) + " positional arguments"
}
