package main

import (
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"postline/plugins/sdk"
)

// ruleCfg is a rules array as TOML hands it over.
func ruleCfg(rules ...map[string]any) map[string]any {
	var out []any
	for _, r := range rules {
		out = append(out, r)
	}
	return map[string]any{"rules": out}
}

const cleanAR = "mx.example.test; spf=pass smtp.mailfrom=a@example.test; dkim=none; dmarc=pass header.from=example.test"

func TestRules(t *testing.T) {
	w := newWorld(t)
	f := w.filter(t, ruleCfg(
		map[string]any{"name": "SUBJECT_LOTTERY", "header": "Subject", "pattern": "(?i)lottery", "score": 2.5},
		map[string]any{"name": "BULK_MAILER", "header": "X-Mailer", "pattern": "BulkMail", "score": int64(1)},
		map[string]any{"name": "BODY_WINNER", "body": "(?i)you are a winner", "score": int64(3)},
		map[string]any{"name": "LIST_FOOTER", "body": "^-- sent by our list server$", "score": -1.5},
	))
	tests := []struct {
		name, header, body string
		want               sdk.Verdict
	}{
		{"header and body rules add, a negative one subtracts",
			header("From: a@example.test", "Subject: =?utf-8?q?Win_the_LOTTERY_=E2=82=AC?="),
			"Dear friend,\r\nYOU ARE A WINNER!\r\n-- sent by our list server\r\n",
			delivered("", cleanAR, "4.0", "No, score=4.0 required=5.0 tests=SUBJECT_LOTTERY,BODY_WINNER,\r\n\tLIST_FOOTER")},
		{"a rule counts once however often it matches",
			header("From: a@example.test", "Subject: lottery", "X-Mailer: BulkMail 2.0"),
			strings.Repeat("you are a winner\r\n", 10),
			delivered("Junk", cleanAR, "6.5", "Yes, score=6.5 required=5.0 tests=SUBJECT_LOTTERY,BULK_MAILER,\r\n\tBODY_WINNER")},
		{"only the named field is searched",
			header("From: a@example.test", "Subject: hello", "X-Note: lottery"), "no line ends here",
			delivered("", cleanAR, "0.0", "No, score=0.0 required=5.0 tests=none")},
		{"a line far longer than maxLine is matched in pieces",
			header("From: a@example.test", "Subject: hi"), strings.Repeat("x", 3*maxLine+100) + "you are a winner" + strings.Repeat("y", maxLine),
			delivered("", cleanAR, "3.0", "No, score=3.0 required=5.0 tests=BODY_WINNER")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One byte at a time: lines and CRLFs split across reads.
			body := iotest.OneByteReader(strings.NewReader(tt.body))
			checkVerdict(t, run(t, f, message(fromLocalhost, tt.header, body)), tt.want)
		})
	}
}

func TestBodyScanLimit(t *testing.T) {
	w := newWorld(t)
	cfg := ruleCfg(
		map[string]any{"name": "EARLY", "body": "early", "score": 1.0},
		map[string]any{"name": "LATE", "body": "late", "score": 1.0},
	)
	cfg["body_scan_limit"] = int64(1000)
	f := w.filter(t, cfg)
	body := "early\r\n" + strings.Repeat("filler line\r\n", 100) + "late\r\n"
	got := run(t, f, message(fromLocalhost, plainHeader, strings.NewReader(body)))
	checkVerdict(t, got, delivered("", cleanAR, "1.0", "No, score=1.0 required=5.0 tests=EARLY"))
}

func TestThresholds(t *testing.T) {
	w := newWorld(t)
	cfg := ruleCfg(
		map[string]any{"name": "JUNKY", "header": "Subject", "pattern": "junk", "score": 6.0},
		map[string]any{"name": "AWFUL", "header": "Subject", "pattern": "awful", "score": 12.0},
		map[string]any{"name": "EDGE", "header": "Subject", "pattern": "edge", "score": 2.1},
		map[string]any{"name": "EDGE2", "header": "Subject", "pattern": "edge", "score": 2.9},
		map[string]any{"name": "FRIEND", "header": "X-Friend", "pattern": "yes", "score": int64(-2)},
	)
	f := w.filter(t, cfg)
	tests := []struct {
		subject string
		extra   []string
		want    sdk.Verdict
	}{
		{"hello", nil, delivered("", cleanAR, "0.0", "No, score=0.0 required=5.0 tests=none")},
		{"junk", nil, delivered("Junk", cleanAR, "6.0", "Yes, score=6.0 required=5.0 tests=JUNKY")},
		{"junk", []string{"X-Friend: yes"}, delivered("", cleanAR, "4.0", "No, score=4.0 required=5.0 tests=JUNKY,FRIEND")},
		{"edge", nil, delivered("Junk", cleanAR, "5.0", "Yes, score=5.0 required=5.0 tests=EDGE,EDGE2")}, // 2.1+2.9 is 5 exactly
		{"awful", nil, sdk.Reject(550, "5.7.1", "message refused as spam (score 12.0)")},
		{"awful junk", nil, sdk.Reject(550, "5.7.1", "message refused as spam (score 18.0)")},
	}
	for _, tt := range tests {
		t.Run(tt.subject+strings.Join(tt.extra, ","), func(t *testing.T) {
			h := header(append([]string{"From: a@example.test", "Subject: " + tt.subject}, tt.extra...)...)
			checkVerdict(t, run(t, f, message(fromLocalhost, h, strings.NewReader(plainBody))), tt.want)
		})
	}
}

func TestStatusFolds(t *testing.T) {
	var tests []string
	for range 12 {
		tests = append(tests, "DNSBL_zone.example")
	}
	v := statusValue(true, 48, 5, tests)
	for i, line := range strings.Split(v, "\r\n") {
		if i == 0 {
			line = "X-Spam-Status: " + line
		}
		if len(line) > 78 || i > 0 && !strings.HasPrefix(line, "\t") {
			t.Errorf("line %d %q: too long or not a continuation", i, line)
		}
	}
	if !strings.Contains(v, ",\r\n\t") {
		t.Errorf("%q: not folded", v)
	}
	if got := strings.Count(strings.ReplaceAll(v, "\r\n\t", ""), "DNSBL_"); got != 12 {
		t.Errorf("%d tests in %q, want 12", got, v)
	}
}

// TestAuthenticatedSkipped: submissions are the MSA's business; the
// filter neither asks DNS nor reads the body.
func TestAuthenticatedSkipped(t *testing.T) {
	w := newWorld(t)
	f := w.filter(t, map[string]any{"dnsbl_zones": []any{"bl.test"}})
	s := session{ip: "192.0.2.1", helo: "laptop", sender: "a@other.test", auth: "alice"}
	body := &countingReader{r: strings.NewReader(plainBody)}
	got := run(t, f, message(s, plainHeader, body))
	checkVerdict(t, got, sdk.Continue())
	if n := len(w.dns.Queries()); n != 0 || body.n != 0 {
		t.Errorf("%d DNS queries, %d body bytes read; want none", n, body.n)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
