package mtasts

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	p, err := Parse("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net.\r\nmax_age: 604800\r\nextension: ignored\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if p.Mode != Enforce || p.MaxAge != 7*24*time.Hour || strings.Join(p.MX, " ") != "mail.example.com *.example.net" {
		t.Errorf("parsed %+v", p)
	}
	if p, err := Parse("version: STSv1\nmode: none\nmax_age: 0\n"); err != nil || p.Mode != None {
		t.Errorf("mode none without mx: %+v, %v", p, err)
	}
	for name, body := range map[string]string{
		"no version":      "mode: enforce\nmx: a.example\nmax_age: 1\n",
		"bad version":     "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n",
		"bad mode":        "version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n",
		"no max_age":      "version: STSv1\nmode: enforce\nmx: a.example\n",
		"max_age too big": "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n",
		"max_age text":    "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1d\n",
		"no mx":           "version: STSv1\nmode: enforce\nmax_age: 1\n",
		"not key: value":  "version: STSv1\nmode enforce\nmx: a.example\nmax_age: 1\n",
		"html":            "<html><body>Not found</body></html>",
	} {
		if p, err := Parse(body); err == nil {
			t.Errorf("%s: parsed as %+v", name, p)
		}
	}
}

// RFC 8461 §4.1: "*.example.com" matches one label, no more, no less.
func TestAllows(t *testing.T) {
	p := &Policy{MX: []string{"mail.example.com", "*.example.net"}}
	for host, want := range map[string]bool{
		"mail.example.com": true, "MAIL.Example.COM.": true, "mx.example.com": false,
		"mx.example.net": true, "example.net": false, "a.b.example.net": false, "xexample.net": false,
	} {
		if got := p.Allows(host); got != want {
			t.Errorf("Allows(%s) = %v", host, got)
		}
	}
}

func TestRecordID(t *testing.T) {
	for _, tc := range []struct {
		txts []string
		want string
	}{
		{[]string{"v=STSv1; id=20160831085700Z;"}, "20160831085700Z"},
		{[]string{"v=STSv1;id=abc"}, "abc"},
		{[]string{"v=spf1 -all", "v=STSv1; id=abc;"}, "abc"},
		{[]string{"v=STSv1; id=abc;", "v=STSv1; id=def;"}, ""}, // two records: none
		{[]string{"v=STSv1; id=not-alnum;"}, ""},
		{[]string{"v=STSv1;"}, ""},
		{[]string{"id=abc; v=STSv1"}, ""}, // v must come first
		{nil, ""},
	} {
		if got := RecordID(tc.txts); got != tc.want {
			t.Errorf("RecordID(%q) = %q, want %q", tc.txts, got, tc.want)
		}
	}
}
