package sieve

import "strings"

// address is one mailbox of an address list. When the entry could not be
// parsed Valid is false and only Raw is set: RFC 5228 §2.7.4 lets :all see
// it but never :localpart or :domain.
type address struct {
	Local, Domain string
	Raw           string
	Valid         bool
}

func (a address) all() string {
	if !a.Valid {
		return a.Raw
	}
	if a.Domain == "" {
		return a.Local
	}
	return a.Local + "@" + a.Domain
}

// parseAddressList splits an RFC 5322 §3.4 address-list, groups included
// ("name: a@b, c@d;"), into mailboxes. It is lenient: display names and
// comments are dropped, a malformed entry is kept as invalid.
func parseAddressList(s string) []address {
	var out []address
	for _, e := range splitEntries(s) {
		if a, ok := parseEntry(e); ok {
			out = append(out, a)
		}
	}
	return out
}

// addrScanner tracks quoting, comments and angle brackets while splitting.
type addrScanner struct {
	quoted, escaped bool
	comment, angle  int
}

// step updates the state for c and reports whether c is structural (outside
// quotes, comments and angle brackets).
func (st *addrScanner) step(c byte) bool {
	switch {
	case st.escaped:
		st.escaped = false
	case c == '\\' && (st.quoted || st.comment > 0):
		st.escaped = true
	case st.quoted:
		st.quoted = c != '"'
	case c == '"':
		st.quoted = true
	case c == '(':
		st.comment++
	case c == ')' && st.comment > 0:
		st.comment--
	case st.comment > 0:
	case c == '<':
		st.angle++
	case c == '>' && st.angle > 0:
		st.angle--
	default:
		return st.angle == 0
	}
	return false
}

// splitEntries splits at top-level commas and group punctuation (§3.4:
// group = display-name ":" [group-list] ";").
func splitEntries(s string) []string {
	var entries []string
	var st addrScanner
	start, inGroup := 0, false
	for i := 0; i < len(s); i++ {
		if !st.step(s[i]) {
			continue
		}
		switch s[i] {
		case ',':
			entries = append(entries, s[start:i])
			start = i + 1
		case ':':
			if !inGroup && !strings.Contains(s[start:i], "@") {
				inGroup, start = true, i+1
			}
		case ';':
			if inGroup {
				entries = append(entries, s[start:i])
				inGroup, start = false, i+1
			}
		}
	}
	return append(entries, s[start:])
}

// parseEntry parses one mailbox: name-addr or addr-spec (§3.4).
func parseEntry(e string) (address, bool) {
	raw := strings.TrimSpace(e)
	if raw == "" {
		return address{}, false
	}
	spec := stripComments(raw)
	if i := strings.LastIndexByte(spec, '<'); i >= 0 {
		j := strings.IndexByte(spec[i:], '>')
		if j < 0 {
			return address{Raw: raw}, true
		}
		spec = spec[i+1 : i+j]
		if k := strings.LastIndexByte(spec, ':'); k >= 0 && strings.HasPrefix(spec, "@") {
			spec = spec[k+1:] // obsolete source route, §4.4
		}
	}
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return address{Raw: raw}, true
	}
	return parseAddrSpec(spec, raw), true
}

// parseAddrSpec splits local-part "@" domain at the last '@' (§3.4.1).
func parseAddrSpec(spec, raw string) address {
	at := strings.LastIndexByte(spec, '@')
	if at <= 0 || at == len(spec)-1 {
		return address{Raw: raw}
	}
	local := strings.TrimSpace(spec[:at])
	domain := strings.TrimSpace(spec[at+1:])
	if strings.ContainsAny(domain, " \t\"<>,;") {
		return address{Raw: raw}
	}
	if len(local) >= 2 && local[0] == '"' && local[len(local)-1] == '"' {
		local = unquote(local[1 : len(local)-1])
	} else if strings.ContainsAny(local, " \t\"<>,;") {
		return address{Raw: raw}
	}
	return address{Local: local, Domain: domain, Raw: raw, Valid: true}
}

func unquote(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// stripComments removes RFC 5322 §3.2.2 comments outside quoted strings.
func stripComments(s string) string {
	var b strings.Builder
	var st addrScanner
	for i := 0; i < len(s); i++ {
		wasComment := st.comment > 0
		st.step(s[i])
		if !wasComment && st.comment == 0 {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// validMailbox reports whether s is exactly one valid address.
func validMailbox(s string) bool {
	l := parseAddressList(s)
	return len(l) == 1 && l[0].Valid
}

// subaddress splits a local part at the first delimiter (RFC 5233 §3);
// ok is false when there is no delimiter, so :detail matches nothing.
func subaddress(local, delim string) (user, detail string, ok bool) {
	if delim == "" {
		return local, "", false
	}
	i := strings.Index(local, delim)
	if i < 0 {
		return local, "", false
	}
	return local[:i], local[i+len(delim):], true
}
