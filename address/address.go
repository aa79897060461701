// Package address parses and normalizes the mailbox addresses of SMTP
// envelopes, so that every daemon compares them the same way and none of
// the classic relay tricks can smuggle a remote destination past a
// local-domain check.
//
// address never looks anything up; it only reads strings.
package address

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Address is a mailbox split into its local part and domain.
type Address struct {
	Local  string // as given (case kept, quotes kept)
	Domain string // lower case, A-labels (punycode), no trailing dot; or an address literal
}

// ErrSyntax is wrapped by every parse error.
var ErrSyntax = errors.New("bad address syntax")

// Parse splits a mailbox as go-smtp hands it over ("local@domain", a
// source route already removed). An unquoted "@" in the local part
// ("user@remote@local") is refused; a quoted one ("\"a@b\"@local") is
// kept inside the local part, where it can never name a remote host.
func Parse(s string) (Address, error) {
	if !utf8.ValidString(s) {
		return Address{}, fmt.Errorf("%w: %q is not UTF-8", ErrSyntax, s)
	}
	i := strings.LastIndexByte(s, '@')
	if i <= 0 || i == len(s)-1 {
		return Address{}, fmt.Errorf("%w: %q needs local@domain", ErrSyntax, s)
	}
	local, domain := s[:i], s[i+1:]
	if err := checkLocal(local); err != nil {
		return Address{}, fmt.Errorf("%w: %q: %v", ErrSyntax, s, err)
	}
	d, err := NormalizeDomain(domain)
	if err != nil {
		return Address{}, fmt.Errorf("%w: %q: %v", ErrSyntax, s, err)
	}
	return Address{Local: local, Domain: d}, nil
}

func checkLocal(local string) error {
	quoted := len(local) >= 2 && local[0] == '"' && local[len(local)-1] == '"'
	for _, r := range local {
		if r < 0x20 || r == 0x7f {
			return errors.New("control character in local part")
		}
		if r == '@' && !quoted {
			return errors.New("\"@\" in local part")
		}
	}
	return nil
}

// NormalizeDomain lower-cases d, drops a trailing dot (RFC 1034's
// absolute form) and converts an internationalized name to A-labels
// (RFC 5890), so "Example.TEST.", "bücher.example" and
// "xn--bcher-kva.example" compare as they should. An address literal
// ("[192.0.2.1]") is returned as is.
func NormalizeDomain(d string) (string, error) {
	if strings.HasPrefix(d, "[") {
		if !strings.HasSuffix(d, "]") {
			return "", errors.New("unterminated address literal")
		}
		return strings.ToLower(d), nil
	}
	d = strings.TrimSuffix(d, ".")
	if d == "" {
		return "", errors.New("empty domain")
	}
	ascii, err := idna.Lookup.ToASCII(d)
	if err != nil {
		return "", fmt.Errorf("domain %q: %v", d, err)
	}
	ascii = strings.ToLower(ascii)
	if !isHostname(ascii) {
		return "", fmt.Errorf("domain %q is not a host name", d)
	}
	return ascii, nil
}

// isHostname checks RFC 1123 syntax: dot-separated labels of 1 to 63
// letters, digits and hyphens, 253 octets in all.
func isHostname(d string) bool {
	if len(d) > 253 {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if len(label) == 0 || len(label) > 63 {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// IsLiteral reports whether the domain is an address literal.
func (a Address) IsLiteral() bool { return strings.HasPrefix(a.Domain, "[") }

// Key is the form used to look an address up among local users: the
// normalized domain and the lower-cased local part.
func (a Address) Key() string { return strings.ToLower(a.Local) + "@" + a.Domain }

// String returns local@domain with the normalized domain.
func (a Address) String() string { return a.Local + "@" + a.Domain }

// IsASCII reports whether s needs no SMTPUTF8 (RFC 6531).
func IsASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
