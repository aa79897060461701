package main

import (
	"errors"
	"net"
	"os"
	"regexp"
	"strings"
	"time"

	"postline/plugins/sdk"
)

// config is the [plugins.config] table, checked and with defaults filled
// in. It never changes once Configure returns.
type config struct {
	authservID    string
	junkScore     float64
	rejectScore   float64
	weights       weights
	zones         []string // DNSBL zones, lower case, no trailing dot
	rules         []rule
	bodyScanLimit int64
	dnsTimeout    time.Duration
	spamd         string // "" when off
	spamdTimeout  time.Duration
	spamdMaxSize  int64
	res           *resolver
}

// weights are the points each failed check adds to the score.
type weights struct {
	spfFail, spfSoftfail, dkimFail, dmarcReject, dmarcQuarantine, dnsbl float64
}

// knownKeys are the keys [plugins.config] may hold; anything else is
// most likely a typo that would silently turn a check off.
var knownKeys = []string{
	"authserv_id", "junk_score", "reject_score", "spf_fail", "spf_softfail", "dkim_fail",
	"dmarc_reject", "dmarc_quarantine", "dnsbl_zones", "dnsbl_score", "rules", "body_scan_limit",
	"dns_server", "dns_timeout", "spamd", "spamd_timeout", "spamd_max_size",
}

// parseConfig checks the table and fills in the defaults; hostname is the
// default authserv-id. Every problem is reported at once, each naming its
// key and how to fix it, since the daemon refuses to start on any.
func parseConfig(raw map[string]any, hostname string) (*config, error) {
	var errs []error
	t := table{sdk.ConfigTable{M: raw, Errs: &errs}}
	t.Unknown(knownKeys)
	c := &config{
		authservID:  t.String("authserv_id", hostname),
		junkScore:   t.number("junk_score", 5.0),
		rejectScore: t.number("reject_score", 10.0),
		weights: weights{
			spfFail:         t.number("spf_fail", 3.0),
			spfSoftfail:     t.number("spf_softfail", 1.0),
			dkimFail:        t.number("dkim_fail", 2.0),
			dmarcReject:     t.number("dmarc_reject", 5.0),
			dmarcQuarantine: t.number("dmarc_quarantine", 3.0),
			dnsbl:           t.number("dnsbl_score", 4.0),
		},
		zones:         t.zones("dnsbl_zones"),
		rules:         parseRules(t),
		bodyScanLimit: t.size("body_scan_limit", 1<<20),
		dnsTimeout:    t.Duration("dns_timeout", 2*time.Second),
		spamd:         t.address("spamd", "127.0.0.1:783"),
		spamdTimeout:  t.Duration("spamd_timeout", 10*time.Second),
		spamdMaxSize:  t.size("spamd_max_size", 500<<10),
	}
	c.res = newResolver(t.address("dns_server", "127.0.0.1:53"), c.dnsTimeout)
	if c.authservID == "" {
		c.authservID, _ = os.Hostname()
	}
	if !authservRe.MatchString(c.authservID) {
		t.Fail("authserv_id", "%q is not a host name; set e.g. authserv_id = \"mx.example.org\"", c.authservID)
	}
	if c.junkScore > c.rejectScore {
		t.Fail("junk_score", "%.1f is above reject_score %.1f, so nothing would be filed into Junk; lower it", c.junkScore, c.rejectScore)
	}
	return c, errors.Join(errs...)
}

// authservRe: RFC 8601 §2.5 makes authserv-id a value (token); a host
// name is what every receiver uses.
var authservRe = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?$`)

// table reads one TOML table, recording problems instead of stopping at
// the first. where prefixes keys inside an array of tables ("rules[2]").
type table struct{ sdk.ConfigTable }

// number reads a score: TOML gives 5 as int64 and 5.0 as float64.
func (t table) number(key string, def float64) float64 {
	switch v := t.M[key].(type) {
	case nil:
		return def
	case int64:
		return float64(v)
	case float64:
		return v
	default:
		t.Fail(key, "got %s, want a number, e.g. %s = %.1f", sdk.Describe(v), key, def)
		return def
	}
}

// size reads a positive byte count.
func (t table) size(key string, def int64) int64 {
	v, ok := t.M[key]
	if !ok {
		return def
	}
	n, isInt := v.(int64)
	if f, isFloat := v.(float64); isFloat && f == float64(int64(f)) {
		n, isInt = int64(f), true
	}
	if !isInt || n <= 0 {
		t.Fail(key, "got %s, want a positive number of bytes, e.g. %s = %d", sdk.Describe(v), key, def)
		return def
	}
	return n
}

// address reads "host:port", or "" for off; example shows the form.
func (t table) address(key, example string) string {
	s := t.String(key, "")
	if s == "" {
		return ""
	}
	if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
		t.Fail(key, "%q is not host:port; write e.g. %s = %q", s, key, example)
		return ""
	}
	return s
}

// list reads an array of strings.
func (t table) list(key string) []string {
	v, ok := t.M[key]
	if !ok {
		return nil
	}
	items, ok := v.([]any)
	var out []string
	for _, it := range items {
		s, isStr := it.(string)
		ok = ok && isStr
		out = append(out, s)
	}
	if !ok {
		t.Fail(key, "got %s, want an array of strings, e.g. %s = [\"a\", \"b\"]", sdk.Describe(v), key)
		return nil
	}
	return out
}

var zoneRe = regexp.MustCompile(`^[a-z0-9_-]+(\.[a-z0-9_-]+)*$`)

// zones reads the DNSBL zones; they end up in X-Spam-Status, so only
// host-name characters are allowed.
func (t table) zones(key string) []string {
	var out []string
	for _, z := range t.list(key) {
		z = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(z)), ".")
		if !zoneRe.MatchString(z) {
			t.Fail(key, "%q is not a DNS zone, e.g. \"zen.spamhaus.org\"", z)
			continue
		}
		out = append(out, z)
	}
	return out
}
