package sieve

import (
	"context"
	"fmt"
	"strings"
)

// run is the state of one execution of a script (RFC 5228 §2.10).
type run struct {
	ctx            context.Context
	s              *Script
	in             *Input
	vars           map[string]string // RFC 5229 variables, lower-case names
	match          []string          // match variables ${0}..${N}
	flags          []string          // RFC 5232 §3 internal variable
	actions        []Action
	notes          []string
	cancelled      bool // implicit keep cancelled (§2.10.2)
	keptExplicitly bool
	stopped        bool
	steps          int
	redirects      int
	rejectPos      Pos
	vacationSet    bool
	hdrCache       map[string][]string
	body           *bodyCache
}

func newRun(ctx context.Context, s *Script, in *Input) *run {
	return &run{ctx: ctx, s: s, in: in, vars: map[string]string{}, hdrCache: map[string][]string{}}
}

// step counts work against MaxSteps and checks for cancellation, so a
// hostile script cannot run unbounded.
func (r *run) step(p Pos) error {
	r.steps++
	if r.steps > r.in.Options.MaxSteps {
		return &RuntimeError{p, fmt.Sprintf("instruction limit of %d reached", r.in.Options.MaxSteps)}
	}
	if r.steps%256 == 0 {
		if err := r.ctx.Err(); err != nil {
			return fmt.Errorf("sieve: run cancelled at line %d: %w", p.Line, err)
		}
	}
	return nil
}

// exec runs a command list, following if/elsif/else chains (§3.1).
func (r *run) exec(cmds []*Command) error {
	chainDone := false
	for _, c := range cmds {
		if r.stopped {
			return nil
		}
		if err := r.step(c.Pos); err != nil {
			return err
		}
		switch c.Name {
		case "if", "elsif", "else":
			if c.Name == "if" {
				chainDone = false
			}
			if chainDone {
				continue
			}
			ok, err := r.cond(c)
			if err != nil || !ok {
				if err != nil {
					return err
				}
				continue
			}
			chainDone = true
			if err := r.exec(c.Block); err != nil {
				return err
			}
		default:
			if err := r.command(c); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *run) cond(c *Command) (bool, error) {
	if c.Name == "else" {
		return true, nil
	}
	return r.test(c.Tests[0])
}

// str returns a single-string argument with variables expanded (RFC 5229
// §3: expansion happens when the string is used).
func (r *run) str(a *Arg) string {
	if a == nil || len(a.Strs) == 0 {
		return ""
	}
	return r.expand(a.Strs[0])
}

func (r *run) list(a *Arg) []string {
	if a == nil {
		return nil
	}
	if !r.s.required["variables"] {
		return a.Strs
	}
	out := make([]string, len(a.Strs))
	for i, s := range a.Strs {
		out[i] = r.expand(s)
	}
	return out
}

func (r *run) expand(s string) string {
	if !r.s.required["variables"] {
		return s
	}
	return expand(s, r.vars, r.match)
}

// command runs one action or control command (§3, §4 and extensions).
func (r *run) command(c *Command) error {
	ch := &c.c
	switch c.Name {
	case "require":
	case "stop":
		r.stopped = true // §3.3
	case "keep":
		r.keptExplicitly, r.cancelled = true, true
		r.store(inbox, r.flagsArg(ch), false, false)
	case "discard":
		r.cancelled = true
		r.discardOnce()
	case "fileinto":
		r.cancelled = r.cancelled || !ch.has("copy")
		r.store(r.str(ch.pos[0]), r.flagsArg(ch), ch.has("create"), ch.has("copy"))
	case "redirect":
		return r.redirectCmd(c)
	case "reject", "ereject":
		r.cancelled, r.rejectPos = true, c.Pos
		r.actions = append(r.actions, rejectAction(c.Name, r.str(ch.pos[0])))
	case "vacation":
		return r.vacation(c)
	case "set":
		r.set(ch)
	case "setflag", "addflag", "removeflag":
		r.flagCommand(c.Name, ch)
	}
	return nil
}

func rejectAction(name, reason string) Action {
	if name == "ereject" {
		return EReject{Reason: reason}
	}
	return Reject{Reason: reason}
}

func (r *run) discardOnce() {
	for _, have := range r.actions {
		if _, ok := have.(Discard); ok {
			return
		}
	}
	r.actions = append(r.actions, Discard{})
}

// redirectCmd checks the expanded address (RFC 5228 §4.2) and applies the
// redirect limit.
func (r *run) redirectCmd(c *Command) error {
	addr := strings.TrimSpace(r.str(c.c.pos[0]))
	l := parseAddressList(addr)
	if len(l) != 1 || !l[0].Valid {
		return &RuntimeError{c.Pos, fmt.Sprintf("invalid redirect address %q", addr)}
	}
	if !c.c.has("copy") {
		r.cancelled = true
	}
	return r.redirect(c.Pos, l[0].all(), c.c.has("copy"))
}

// set assigns a variable (RFC 5229 §4), capped at MaxVariableSize.
func (r *run) set(ch *checked) {
	name := strings.ToLower(r.str(ch.pos[0]))
	v := modify(r.str(ch.pos[1]), ch.tags)
	r.vars[name] = truncateUTF8(v, r.in.Options.MaxVariableSize)
}
