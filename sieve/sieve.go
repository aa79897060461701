package sieve

import (
	"context"
	"io"
	"time"
)

// Script is a parsed and checked Sieve script, ready to run any number of
// times, concurrently if wanted (Run keeps its state per call).
type Script struct {
	cmds     []*Command
	required map[string]bool
}

// Parse lexes, parses and checks a script. On failure the error is an
// ErrorList of *SyntaxError, each with the line and column of its cause.
func Parse(src []byte) (*Script, error) {
	cmds, err := parseTree(src)
	if err != nil {
		return nil, ErrorList{err.(*SyntaxError)}
	}
	c := &checker{specs: specs(), caps: capabilities(), required: map[string]bool{}}
	c.commands(cmds, true)
	if len(c.errs) > 0 {
		return nil, c.errs
	}
	return &Script{cmds: cmds, required: c.required}, nil
}

// Requires reports whether the script required the capability.
func (s *Script) Requires(capability string) bool { return s.required[capability] }

// Envelope is the SMTP envelope of the delivery (RFC 5228 §5.4). From is
// the reverse-path without angle brackets, "" for the null sender <>. To is
// the recipient being delivered to, the script owner's address.
type Envelope struct {
	From, To string
}

// VacationMemory is what the caller remembers of vacation responses sent
// (RFC 5230 §4.2): Seen reports whether a response with this handle went to
// this sender within the period the caller recorded with it.
type VacationMemory interface {
	Seen(handle, sender string) bool
}

// Input is everything a run may look at. Only Header and Envelope are
// required; Body is called at most once, and only by the body test.
type Input struct {
	Envelope Envelope
	Header   Header
	Body     func() (io.Reader, error)
	Size     int64
	// Now is the time for currentdate; its location is the local zone for
	// date tests without :zone. Zero means time.Now().
	Now time.Time
	// UserAddresses are the owner's other addresses, which vacation looks
	// for in To/Cc/Bcc besides Envelope.To (RFC 5230 §4.5).
	UserAddresses []string
	Vacation      VacationMemory
	// MailboxExists answers mailboxexists (RFC 5490 §3.1); nil: no mailbox.
	MailboxExists func(name string) bool
	Options       Options
}

// Options bounds and tunes a run; zero fields take the defaults.
type Options struct {
	MaxRedirects        int           // redirects per run, default 10
	MaxSteps            int           // commands and tests evaluated, default 100000
	MaxVariableSize     int           // bytes per variable, default 4096
	SubaddressDelimiter string        // RFC 5233 §3, default "+"
	VacationMinPeriod   time.Duration // default 24h, as RFC 5230 §4.1 advises
	VacationMaxPeriod   time.Duration // 0: no upper bound
}

func (o Options) withDefaults() Options {
	if o.MaxRedirects == 0 {
		o.MaxRedirects = 10
	}
	if o.MaxSteps == 0 {
		o.MaxSteps = 100000
	}
	if o.MaxVariableSize == 0 {
		o.MaxVariableSize = 4096
	}
	if o.SubaddressDelimiter == "" {
		o.SubaddressDelimiter = "+"
	}
	if o.VacationMinPeriod == 0 {
		o.VacationMinPeriod = 24 * time.Hour
	}
	return o
}

// Run executes the script against one message and returns the actions to
// take. It never sends, stores or remembers anything itself. When the
// script fails at run time (a limit, conflicting actions), the error says
// why and the result holds only the implicit keep (RFC 5228 §2.10.6).
func (s *Script) Run(ctx context.Context, in Input) (*Result, error) {
	if in.Now.IsZero() {
		in.Now = time.Now()
	}
	in.Options = in.Options.withDefaults()
	r := newRun(ctx, s, &in)
	if err := r.exec(s.cmds); err != nil {
		return failed(), err
	}
	return r.finish()
}
