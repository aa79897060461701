package received

import (
	"net"
	"strings"
	"time"

	"postline/address"
)

// Trace is what a Received field records about one message's entry.
type Trace struct {
	Helo          string // the client's HELO/EHLO argument
	ReverseDNS    string // verified PTR name, "" when none
	IP            string // the client's address
	Hostname      string // this host
	Protocol      string // "SMTP", "ESMTP" or "LMTP"; "" means ESMTP
	TLSVersion    string // e.g. "TLS1.3" or "TLSv1.3"; "" without TLS
	TLSCipher     string
	Authenticated bool
	QueueID       string
	Recipients    []string
	Date          time.Time
}

// Field returns the Received field's value (without "Received: "),
// folded with CRLF and a tab before "by", "id" and "for".
func (t Trace) Field() string {
	var b strings.Builder
	helo := clean(t.Helo, true)
	if helo == "" {
		helo = "unknown"
	}
	rdns := clean(t.ReverseDNS, true)
	if rdns == "" {
		rdns = "unknown"
	}
	b.WriteString("from " + helo + " (" + rdns + " " + addressLiteral(t.IP) + ")")
	if host := clean(t.Hostname, true); host != "" {
		b.WriteString("\r\n\tby " + host)
	}
	b.WriteString(" with " + t.with())
	if t.TLSVersion != "" {
		b.WriteString("\r\n\t(using " + tlsVersion(clean(t.TLSVersion, true)))
		if c := clean(t.TLSCipher, true); c != "" {
			b.WriteString(" with cipher " + c)
		}
		b.WriteString(")")
	}
	if id := clean(t.QueueID, true); id != "" {
		b.WriteString("\r\n\tid " + id)
	}
	// A non-ASCII address would need an SMTPUTF8 header: left out.
	if len(t.Recipients) == 1 && address.IsASCII(t.Recipients[0]) {
		if r := clean(t.Recipients[0], false); r != "" {
			b.WriteString("\r\n\tfor <" + r + ">")
		}
	}
	b.WriteString("; " + t.Date.Format(time.RFC1123Z))
	return b.String()
}

// with is the protocol with RFC 3848's S (TLS) and A (authenticated).
func (t Trace) with() string {
	p := strings.ToUpper(clean(t.Protocol, true))
	switch p {
	case "":
		p = "ESMTP"
	case "ESMTP", "LMTP":
	default:
		return p // plain SMTP (HELO) has no S or A variants
	}
	if t.TLSVersion != "" {
		p += "S"
	}
	if t.Authenticated {
		p += "A"
	}
	return p
}

// addressLiteral is RFC 5321's form of an address: [192.0.2.1] or
// [IPv6:2001:db8::1].
func addressLiteral(ip string) string {
	a := net.ParseIP(ip)
	switch {
	case a == nil:
		return "[unknown]"
	case a.To4() != nil:
		return "[" + a.To4().String() + "]"
	}
	return "[IPv6:" + a.String() + "]"
}

// tlsVersion writes "TLS1.3" as Postfix does: "TLSv1.3".
func tlsVersion(v string) string {
	if rest, ok := strings.CutPrefix(v, "TLS"); ok && rest != "" && rest[0] >= '0' && rest[0] <= '9' {
		return "TLSv" + rest
	}
	return v
}

// clean removes what a client could use to forge or break the field: CR,
// LF and every other control character, and anything outside printable
// ASCII. With word set, it also removes spaces and the characters that
// delimit the field's comments and literals, so a HELO or a PTR name stays
// one token.
func clean(s string, word bool) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r <= ' ' && (word || r != ' '), r >= 0x7f:
			return -1
		case word && strings.ContainsRune("()[]<>;\\\"", r), r == '<', r == '>':
			return -1
		}
		return r
	}, s)
}
