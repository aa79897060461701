package main

import (
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	c, err := parseConfig(map[string]any{}, "mx.example.test")
	if err != nil {
		t.Fatal(err)
	}
	want := weights{spfFail: 3, spfSoftfail: 1, dkimFail: 2, dmarcReject: 5, dmarcQuarantine: 3, dnsbl: 4}
	if c.authservID != "mx.example.test" || c.junkScore != 5 || c.rejectScore != 10 || c.weights != want ||
		c.bodyScanLimit != 1<<20 || c.dnsTimeout != 2*time.Second || c.spamd != "" ||
		c.spamdTimeout != 10*time.Second || c.spamdMaxSize != 500<<10 || len(c.zones) != 0 || len(c.rules) != 0 {
		t.Errorf("defaults: %+v", c)
	}
}

func TestConfigValues(t *testing.T) {
	c, err := parseConfig(map[string]any{
		"authserv_id": "auth.example.org", "junk_score": int64(4), "reject_score": 8.5,
		"spf_fail": 0.5, "dnsbl_zones": []any{"ZEN.Example.org."}, "dnsbl_score": int64(7),
		"body_scan_limit": int64(4096), "dns_timeout": "500ms", "spamd": "127.0.0.1:783",
		"spamd_timeout": "3s", "spamd_max_size": float64(1000),
		"rules": []any{map[string]any{"name": "R", "header": "Subject", "pattern": "x", "score": int64(-1)}},
	}, "ignored.example")
	if err != nil {
		t.Fatal(err)
	}
	if c.authservID != "auth.example.org" || c.junkScore != 4 || c.rejectScore != 8.5 || c.weights.spfFail != 0.5 ||
		c.weights.dnsbl != 7 || c.zones[0] != "zen.example.org" || c.bodyScanLimit != 4096 ||
		c.dnsTimeout != 500*time.Millisecond || c.spamd != "127.0.0.1:783" || c.spamdTimeout != 3*time.Second ||
		c.spamdMaxSize != 1000 || len(c.rules) != 1 || c.rules[0].score != -1 {
		t.Errorf("parsed: %+v", c)
	}
}

// TestConfigErrors: each mistake is named by its key with the fix.
func TestConfigErrors(t *testing.T) {
	rule := func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return map[string]any{"rules": []any{m}}
	}
	tests := []struct {
		name string
		cfg  map[string]any
		want []string
	}{
		{"typo", map[string]any{"junk_scor": 5.0}, []string{"junk_scor: unknown key; remove it or use one of authserv_id, junk_score"}},
		{"string score", map[string]any{"junk_score": "high"}, []string{`junk_score: got string "high", want a number, e.g. junk_score = 5.0`}},
		{"junk above reject", map[string]any{"junk_score": int64(12)}, []string{"junk_score: 12.0 is above reject_score 10.0"}},
		{"duration without unit", map[string]any{"dns_timeout": int64(2)}, []string{`dns_timeout: got number 2, want a positive duration such as dns_timeout = "2s"`}},
		{"bad duration", map[string]any{"spamd_timeout": "soon"}, []string{`spamd_timeout: got string "soon", want a positive duration such as spamd_timeout = "10s"`}},
		{"no port", map[string]any{"dns_server": "127.0.0.1"}, []string{`dns_server: "127.0.0.1" is not host:port; write e.g. dns_server = "127.0.0.1:53"`}},
		{"spamd no port", map[string]any{"spamd": "localhost"}, []string{`spamd: "localhost" is not host:port`}},
		{"zones not a list", map[string]any{"dnsbl_zones": "zen.spamhaus.org"}, []string{`dnsbl_zones: got string "zen.spamhaus.org", want an array of strings`}},
		{"bad zone", map[string]any{"dnsbl_zones": []any{"zen spamhaus"}}, []string{`dnsbl_zones: "zen spamhaus" is not a DNS zone`}},
		{"negative size", map[string]any{"spamd_max_size": int64(-1)}, []string{"spamd_max_size: got number -1, want a positive number of bytes"}},
		{"bad authserv_id", map[string]any{"authserv_id": "mx; dkim=pass"}, []string{`authserv_id: "mx; dkim=pass" is not a host name`}},
		{"rules not tables", map[string]any{"rules": "X"}, []string{"rules: got string \"X\", want an array of tables, each written [[plugins.config.rules]]"}},
		{"bad regexp", rule("name", "R", "body", "(", "score", 1.0), []string{"rules[0].body: bad regexp: error parsing regexp: missing closing ): `(`"}},
		{"header without pattern", rule("name", "R", "header", "Subject", "score", 1.0), []string{`rules[0].pattern: missing; a header rule needs pattern = "regexp"`}},
		{"header and body", rule("name", "R", "header", "Subject", "pattern", "a", "body", "b", "score", 1.0), []string{"rules[0].body: a rule matches a header field or the body, not both"}},
		{"body with pattern", rule("name", "R", "body", "b", "pattern", "a", "score", 1.0), []string{"rules[0].pattern: a body rule has its regexp in body"}},
		{"neither", rule("name", "R", "score", 1.0), []string{`rules[0].header: missing; give header = "Subject" with pattern = "...", or body = "..."`}},
		{"no score", rule("name", "R", "body", "b"), []string{"rules[0].score: missing"}},
		{"bad name", rule("name", "no spaces", "body", "b", "score", 1.0), []string{`rules[0].name: "no spaces": want 1-64 letters`}},
		{"bad field name", rule("name", "R", "header", "Sub ject", "pattern", "a", "score", 1.0), []string{`rules[0].header: "Sub ject" is not a header field name`}},
		{"unknown rule key", rule("name", "R", "body", "b", "score", 1.0, "weight", 2.0), []string{"rules[0].weight: unknown key; remove it or use one of name, header, pattern, body, score"}},
		{"empty regexp", rule("name", "R", "body", "", "score", 1.0), []string{"rules[0].body: an empty regexp matches every message"}},
		{"every problem at once", map[string]any{"junk_score": "x", "spamd": "nope", "zones": []any{}},
			[]string{"junk_score: got string", `spamd: "nope" is not host:port`, "zones: unknown key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &filter{}
			err := f.Configure(tt.cfg)
			if err == nil {
				t.Fatal("Configure accepted it")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}

func TestDuplicateRuleNames(t *testing.T) {
	cfg := map[string]any{"rules": []any{
		map[string]any{"name": "R", "body": "a", "score": 1.0},
		map[string]any{"name": "R", "body": "b", "score": 1.0},
	}}
	if _, err := parseConfig(cfg, "h"); err == nil || !strings.Contains(err.Error(), `rules[1].name: "R" is used by another rule`) {
		t.Errorf("err = %v", err)
	}
}
