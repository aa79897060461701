package sieve

import (
	"strings"
)

// matcher holds a test's comparator and match type (RFC 5228 §2.7) and, for
// :count and :value, its relational operator (RFC 5231 §4).
type matcher struct {
	cmp string // i;ascii-casemap (default), i;octet, i;ascii-numeric
	typ string // is (default), contains, matches, count, value
	rel string // gt ge lt le eq ne
}

// matcher fills ch.m from the tags and checks that they fit together.
func (c *checker) matcher(name string, ch *checked) {
	ch.m = matcher{cmp: "i;ascii-casemap", typ: "is"}
	if a, ok := ch.tags["comparator"]; ok {
		ch.m.cmp = strings.ToLower(a.Strs[0])
		c.comparator(a.Pos, ch.m.cmp)
	}
	for _, t := range []string{"is", "contains", "matches", "count", "value"} {
		if a, ok := ch.tags[t]; ok {
			ch.m.typ = t
			if t == "count" || t == "value" {
				ch.m.rel = strings.ToLower(a.Strs[0])
				c.relational(a.Pos, ch.m.rel)
			}
		}
	}
	if ch.m.cmp == "i;ascii-numeric" && (ch.m.typ == "contains" || ch.m.typ == "matches") {
		c.errorf(ch.tags["comparator"].Pos, "comparator i;ascii-numeric does not support :%s", ch.m.typ)
	}
}

// comparator checks a comparator name. RFC 5228 §2.7.3: i;octet and
// i;ascii-casemap are always available; others need "comparator-NAME".
func (c *checker) comparator(p Pos, name string) {
	switch name {
	case "i;octet", "i;ascii-casemap":
	case "i;ascii-numeric":
		c.needs(p, "comparator-i;ascii-numeric", "comparator "+name)
	default:
		c.errorf(p, "unknown comparator %q", name)
	}
}

// relational checks a relational operator (RFC 5231 §5).
func (c *checker) relational(p Pos, op string) {
	switch op {
	case "gt", "ge", "lt", "le", "eq", "ne":
	default:
		c.errorf(p, "invalid relational operator %q", op)
	}
}

// literal returns the strings of an argument when none holds a variable
// reference, so that they can be checked before run time.
func (c *checker) literal(a *Arg) ([]string, bool) {
	if a == nil {
		return nil, false
	}
	if c.required["variables"] {
		for _, s := range a.Strs {
			if strings.Contains(s, "${") {
				return nil, false
			}
		}
	}
	return a.Strs, true
}

// semantics runs the checks particular to one command or test.
func (c *checker) semantics(name string, ch *checked) {
	if ch.pos == nil {
		return // argument count already reported
	}
	switch name {
	case "address":
		c.addressHeaders(ch.pos[0])
	case "header", "exists":
		c.headerNames(ch.pos[0])
	case "envelope":
		c.envelopeParts(ch.pos[0])
	case "date":
		c.headerNames(ch.pos[0])
		c.datePart(ch.pos[1])
		c.zone(ch)
	case "currentdate":
		c.datePart(ch.pos[0])
		c.zone(ch)
	case "set":
		c.variableName(ch.pos[0])
	case "setflag", "addflag", "removeflag", "hasflag":
		c.variableName(ch.pos[0])
	case "redirect":
		c.redirectAddress(ch.pos[0])
	case "vacation":
		c.vacation(ch)
	}
}

// addressHeaders: RFC 5228 §5.1 restricts the address test to header fields
// that hold addresses.
func (c *checker) addressHeaders(a *Arg) {
	names, ok := c.literal(a)
	for _, n := range names {
		if ok && !isAddressHeader(strings.ToLower(n)) {
			c.errorf(a.Pos, "header %q is not allowed in the address test", n)
		}
	}
}

func isAddressHeader(n string) bool {
	switch n {
	case "from", "sender", "to", "cc", "bcc", "reply-to", "return-path",
		"resent-from", "resent-sender", "resent-to", "resent-cc", "resent-bcc",
		"delivered-to", "errors-to", "envelope-to", "x-original-to",
		"disposition-notification-to", "original-recipient", "mail-followup-to",
		"mail-reply-to":
		return true
	}
	return false
}

// headerNames checks field names (RFC 5322 §3.6.8: printable ASCII but ':').
func (c *checker) headerNames(a *Arg) {
	names, ok := c.literal(a)
	for _, n := range names {
		if ok && !validFieldName(n) {
			c.errorf(a.Pos, "invalid header name %q", n)
		}
	}
}

func validFieldName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		if n[i] <= ' ' || n[i] >= 127 || n[i] == ':' {
			return false
		}
	}
	return true
}

// envelopeParts: RFC 5228 §5.4 defines "from" and "to".
func (c *checker) envelopeParts(a *Arg) {
	parts, ok := c.literal(a)
	for _, p := range parts {
		if l := strings.ToLower(p); ok && l != "from" && l != "to" {
			c.errorf(a.Pos, "unknown envelope part %q", p)
		}
	}
}

// datePart checks the date-part argument (RFC 5260 §4.2).
func (c *checker) datePart(a *Arg) {
	parts, ok := c.literal(a)
	if ok && len(parts) == 1 && !validDatePart(strings.ToLower(parts[0])) {
		c.errorf(a.Pos, "unknown date part %q", parts[0])
	}
}

// zone checks :zone's "+hhmm" / "-hhmm" (RFC 5260 §4.1).
func (c *checker) zone(ch *checked) {
	a, ok := ch.tags["zone"]
	if !ok {
		return
	}
	if z, lit := c.literal(&a); lit {
		if _, valid := parseZone(z[0]); !valid {
			c.errorf(a.Pos, "invalid time zone %q (want +hhmm or -hhmm)", z[0])
		}
	}
}

// variableName: RFC 5229 §3: identifier = (ALPHA / "_") *(ALPHA / DIGIT / "_").
func (c *checker) variableName(a *Arg) {
	names, ok := c.literal(a)
	for _, n := range names {
		if ok && !validIdentifier(n) {
			c.errorf(a.Pos, "invalid variable name %q", n)
		}
	}
}

func validIdentifier(s string) bool {
	if s == "" || !isIdentStart(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isIdentChar(s[i]) {
			return false
		}
	}
	return true
}

// redirectAddress: RFC 5228 §4.2 wants an RFC 5322 address.
func (c *checker) redirectAddress(a *Arg) {
	addrs, ok := c.literal(a)
	if ok && !validMailbox(addrs[0]) {
		c.errorf(a.Pos, "invalid redirect address %q", addrs[0])
	}
}

func (c *checker) vacation(ch *checked) {
	if a, ok := ch.tags["from"]; ok {
		if from, lit := c.literal(&a); lit && len(parseAddressList(from[0])) != 1 {
			c.errorf(a.Pos, "invalid :from address %q", from[0])
		}
	}
}
