// Package mtasts is the sending side of MTA-STS (RFC 8461): it finds a
// destination domain's policy (the "_mta-sts" TXT record, then the
// policy file over verified HTTPS), keeps it on disk until it expires,
// and says which MX hosts it allows.
//
// Implemented: §3.1 (the TXT record: v=STSv1 first, id; several records
// count as none), §3.2 (the policy: version, mode, mx, max_age; unknown
// fields ignored), §3.3 (HTTPS: the certificate verified for
// mta-sts.<domain>, no redirects, 200 and text/plain only, 64 KiB at
// most, short timeouts), §4.1 (MX patterns, "*." for one label), §5.1
// (a cached policy until max_age; refetched when the TXT id changes or
// it expired; a failed fetch keeps the cached one). Left out: refreshing
// a policy in the background before it expires (§5.1 "SHOULD"; it is
// refetched at the first delivery after), and TLS-RPT (§6 names it).
//
// It never decides how a session goes; the MTA asks Policy.Allows for
// each MX host and requires verified TLS when the mode is enforce.
package mtasts

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Modes of a policy (§3.2).
const (
	Enforce = "enforce"
	Testing = "testing"
	None    = "none"
)

// MaxMaxAge is the largest max_age a policy may give (§3.2: about a year).
const MaxMaxAge = 31557600

// Policy is a parsed policy file.
type Policy struct {
	Mode   string        `json:"mode"`
	MX     []string      `json:"mx"`
	MaxAge time.Duration `json:"max_age"`
}

// Parse reads a policy file (§3.2): "key: value" lines ending in CRLF or
// LF. It fails on a missing or bad version, mode or max_age, or no mx in
// a mode other than none: such a policy is no policy, never "enforce
// nothing".
func Parse(body string) (*Policy, error) {
	fields := map[string]string{}
	p := &Policy{}
	for _, line := range strings.Split(strings.ReplaceAll(body, "\r\n", "\n"), "\n") {
		key, value, ok := strings.Cut(line, ":")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		switch {
		case !ok && strings.TrimSpace(line) == "":
			continue
		case !ok:
			return nil, fmt.Errorf("mta-sts: policy line %q is not key: value", line)
		case key == "mx":
			p.MX = append(p.MX, strings.ToLower(strings.TrimSuffix(value, ".")))
		case fields[key] == "": // the first of a repeated field counts
			fields[key] = value
		}
	}
	if fields["version"] != "STSv1" {
		return nil, fmt.Errorf("mta-sts: policy version %q, want STSv1", fields["version"])
	}
	p.Mode = fields["mode"]
	if p.Mode != Enforce && p.Mode != Testing && p.Mode != None {
		return nil, fmt.Errorf("mta-sts: policy mode %q is not enforce, testing or none", p.Mode)
	}
	age, err := strconv.ParseUint(fields["max_age"], 10, 32)
	if err != nil || len(fields["max_age"]) > 10 || age > MaxMaxAge {
		return nil, fmt.Errorf("mta-sts: policy max_age %q is not seconds up to %d", fields["max_age"], MaxMaxAge)
	}
	p.MaxAge = time.Duration(age) * time.Second
	if p.Mode != None && len(p.MX) == 0 {
		return nil, errors.New("mta-sts: policy lists no mx")
	}
	return p, nil
}

// Strings is the policy as lines, as a TLS report names it (RFC 8460
// §4.4 policy-string).
func (p *Policy) Strings() []string {
	lines := []string{"version: STSv1", "mode: " + p.Mode}
	for _, mx := range p.MX {
		lines = append(lines, "mx: "+mx)
	}
	return append(lines, fmt.Sprintf("max_age: %d", int64(p.MaxAge/time.Second)))
}

// Allows reports whether the policy lists host as an MX: the same name,
// or a "*.parent" pattern and host one label below parent (§4.1).
func (p *Policy) Allows(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, pattern := range p.MX {
		if pattern == host {
			return true
		}
		if parent, ok := strings.CutPrefix(pattern, "*."); ok {
			label, rest, found := strings.Cut(host, ".")
			if found && label != "" && rest == parent {
				return true
			}
		}
	}
	return false
}

// RecordID returns the id of the one MTA-STS TXT record among txts
// (§3.1): records not starting with "v=STSv1" are ignored, and none or
// several valid ones give "" (no policy announced).
func RecordID(txts []string) string {
	var ids []string
	for _, txt := range txts {
		if id, ok := parseRecord(txt); ok {
			ids = append(ids, id)
		} else if strings.HasPrefix(txt, "v=STSv1") {
			return "" // a broken record: no policy announced
		}
	}
	if len(ids) != 1 {
		return ""
	}
	return ids[0]
}

// parseRecord reads "v=STSv1; id=ID;" with optional spaces and other
// fields; the id is 1 to 32 letters and digits.
func parseRecord(txt string) (string, bool) {
	parts := strings.Split(txt, ";")
	if strings.TrimSpace(parts[0]) != "v=STSv1" {
		return "", false
	}
	for _, part := range parts[1:] {
		key, value, _ := strings.Cut(strings.TrimSpace(part), "=")
		if key == "id" && len(value) >= 1 && len(value) <= 32 && isAlnum(value) {
			return value, true
		}
	}
	return "", false
}

func isAlnum(s string) bool {
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
