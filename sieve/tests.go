package sieve

import (
	"strings"
	"time"
)

// test evaluates one test (RFC 5228 §5 and the extensions' tests).
func (r *run) test(t *Test) (bool, error) {
	if err := r.step(t.Pos); err != nil {
		return false, err
	}
	ch := &t.c
	switch t.Name {
	case "true":
		return true, nil
	case "false":
		return false, nil
	case "not":
		ok, err := r.test(t.Tests[0])
		return !ok, err
	case "allof", "anyof":
		return r.combine(t)
	case "exists":
		return r.exists(ch), nil
	case "size":
		return r.size(ch), nil
	case "mailboxexists":
		return r.mailboxExists(ch), nil
	}
	values, keys, err := r.operands(t)
	if err != nil {
		return false, err
	}
	return r.matched(ch.m, values, keys), nil
}

// matched runs the match and records match variables (RFC 5229 §3.2).
func (r *run) matched(m matcher, values, keys []string) bool {
	res := m.match(values, keys)
	if res.ok && m.typ == "matches" {
		for i, c := range res.captures {
			res.captures[i] = truncateUTF8(c, r.in.Options.MaxVariableSize)
		}
		r.match = res.captures
	}
	return res.ok
}

// combine evaluates allof/anyof with short-circuit (§5.2, §5.3).
func (r *run) combine(t *Test) (bool, error) {
	all := t.Name == "allof"
	for _, sub := range t.Tests {
		ok, err := r.test(sub)
		if err != nil {
			return false, err
		}
		if ok != all {
			return ok, nil
		}
	}
	return all, nil
}

// operands returns the values a matching test looks at, and its keys.
func (r *run) operands(t *Test) ([]string, []string, error) {
	ch := &t.c
	switch t.Name {
	case "header":
		return r.headerValues(r.list(ch.pos[0])), r.list(ch.pos[1]), nil
	case "address":
		return r.addressValues(ch), r.list(ch.pos[1]), nil
	case "envelope":
		return r.envelopeValues(ch), r.list(ch.pos[1]), nil
	case "string":
		return r.stringValues(ch), r.list(ch.pos[1]), nil
	case "hasflag":
		return r.hasflagValues(ch), r.list(ch.pos[1]), nil
	case "body":
		v, err := r.bodyValues(ch)
		return v, r.list(ch.pos[0]), err
	case "date":
		return r.dateValues(ch), r.list(ch.pos[2]), nil
	case "currentdate":
		return r.currentDate(ch), r.list(ch.pos[1]), nil
	}
	return nil, nil, nil
}

// headerValues returns decoded values of the named fields (§5.7).
func (r *run) headerValues(names []string) []string {
	var out []string
	for _, n := range names {
		key := strings.ToLower(n)
		vals, ok := r.hdrCache[key]
		if !ok {
			for _, v := range r.in.Header.Values(n) {
				vals = append(vals, decodeHeader(v))
			}
			r.hdrCache[key] = vals
		}
		out = append(out, vals...)
	}
	return out
}

// exists is true when every named field is present (§5.5).
func (r *run) exists(ch *checked) bool {
	for _, n := range r.list(ch.pos[0]) {
		if len(r.in.Header.Values(n)) == 0 {
			return false
		}
	}
	return true
}

// size compares the message size (§5.9); a size is never both.
func (r *run) size(ch *checked) bool {
	limit := ch.pos[0].Num
	if ch.has("under") {
		return r.in.Size < limit
	}
	return r.in.Size > limit
}

// mailboxExists asks the caller about every named mailbox (RFC 5490 §3.1).
func (r *run) mailboxExists(ch *checked) bool {
	if r.in.MailboxExists == nil {
		return false
	}
	for _, m := range r.list(ch.pos[0]) {
		if !r.in.MailboxExists(m) {
			return false
		}
	}
	return true
}

// addressValues parses the named address fields (§5.1) and returns the
// requested part of each address.
func (r *run) addressValues(ch *checked) []string {
	var out []string
	for _, n := range r.list(ch.pos[0]) {
		for _, v := range r.in.Header.Values(n) {
			for _, a := range parseAddressList(v) {
				if p, ok := r.addressPart(ch, a); ok {
					out = append(out, p)
				}
			}
		}
	}
	return out
}

// addressPart applies ADDRESS-PART (§2.7.4, RFC 5233 §4).
func (r *run) addressPart(ch *checked, a address) (string, bool) {
	if ch.has("all") || !hasAnyPart(ch) {
		return a.all(), true
	}
	if !a.Valid {
		return "", false
	}
	switch {
	case ch.has("localpart"):
		return a.Local, true
	case ch.has("domain"):
		return a.Domain, true
	}
	user, detail, ok := subaddress(a.Local, r.in.Options.SubaddressDelimiter)
	if ch.has("user") {
		return user, true
	}
	return detail, ok
}

func hasAnyPart(ch *checked) bool {
	for _, p := range []string{"all", "localpart", "domain", "user", "detail"} {
		if ch.has(p) {
			return true
		}
	}
	return false
}

// envelopeValues returns parts of the envelope addresses (§5.4). The null
// sender is the empty string for every address part.
func (r *run) envelopeValues(ch *checked) []string {
	var out []string
	for _, part := range r.list(ch.pos[0]) {
		v := r.in.Envelope.To
		if strings.EqualFold(part, "from") {
			v = r.in.Envelope.From
		} else if !strings.EqualFold(part, "to") {
			continue
		}
		if v == "" {
			out = append(out, "")
			continue
		}
		for _, a := range parseAddressList(v) {
			if p, ok := r.addressPart(ch, a); ok {
				out = append(out, p)
			}
		}
	}
	return out
}

// stringValues: RFC 5229 §5, where :count counts non-empty strings only.
func (r *run) stringValues(ch *checked) []string {
	src := r.list(ch.pos[0])
	if ch.m.typ != "count" {
		return src
	}
	var out []string
	for _, s := range src {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// dateValues extracts the date-part of each parseable date in the field
// (RFC 5260 §4); a missing or bad date gives no value, so the test fails.
func (r *run) dateValues(ch *checked) []string {
	part := strings.ToLower(r.str(ch.pos[1]))
	var out []string
	for _, v := range r.in.Header.Values(r.str(ch.pos[0])) {
		t, ok := parseMessageDate(v)
		if !ok {
			continue
		}
		if !ch.has("originalzone") {
			t = t.In(r.zone(ch))
		}
		out = append(out, datePart(t, part))
	}
	return out
}

// currentDate formats the run's clock (RFC 5260 §5).
func (r *run) currentDate(ch *checked) []string {
	part := strings.ToLower(r.str(ch.pos[0]))
	return []string{datePart(r.in.Now.In(r.zone(ch)), part)}
}

// zone is :zone's location, or the local zone (RFC 5260 §4.1).
func (r *run) zone(ch *checked) *time.Location {
	if a, ok := ch.tags["zone"]; ok {
		if loc, ok := parseZone(r.str(&a)); ok {
			return loc
		}
	}
	return r.in.Now.Location()
}
