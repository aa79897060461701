package main

import (
	"bytes"
	"fmt"
	"mime"
	"regexp"

	"github.com/emersion/go-message/textproto"

	"postline/plugins/sdk"
)

// rule is one configured header or body rule. Its name goes into
// X-Spam-Status when it matches; each rule counts at most once per message.
type rule struct {
	name   string
	header string // field name for a header rule, "" for a body rule
	re     *regexp.Regexp
	score  float64
}

// maxLine caps the bytes a body rule sees at once: a longer line is
// matched in maxLine pieces, so a body without line breaks costs no more
// memory than one with them.
const maxLine = 4 << 10

var (
	ruleNameRe  = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	fieldNameRe = regexp.MustCompile(`^[!-9;-~]+$`) // RFC 5322 §3.6.8 ftext
)

// parseRules reads the rules array of tables:
//
//	[[plugins.config.rules]]
//	name = "LOTTERY"
//	header = "Subject"
//	pattern = "(?i)lottery"
//	score = 2.5
func parseRules(t table) []rule {
	v, ok := t.M["rules"]
	if !ok {
		return nil
	}
	items, ok := v.([]any)
	if !ok {
		t.Fail("rules", "got %s, want an array of tables, each written [[plugins.config.rules]]", sdk.Describe(v))
		return nil
	}
	var out []rule
	seen := map[string]bool{}
	for i, it := range items {
		where := fmt.Sprintf("rules[%d]", i)
		m, ok := it.(map[string]any)
		if !ok {
			t.Fail(where, "got %s, want a table with name, score and header+pattern or body", sdk.Describe(it))
			continue
		}
		r, ok := parseRule(table{sdk.ConfigTable{Where: where, M: m, Errs: t.Errs}})
		if ok && seen[r.name] {
			t.Fail(where+".name", "%q is used by another rule; names must be unique", r.name)
			ok = false
		}
		if ok {
			seen[r.name] = true
			out = append(out, r)
		}
	}
	return out
}

// parseRule checks one rule table; ok is false after any problem.
func parseRule(t table) (rule, bool) {
	before := len(*t.Errs)
	t.Unknown([]string{"name", "header", "pattern", "body", "score"})
	r := rule{name: t.String("name", ""), header: t.String("header", ""), score: t.number("score", 1.0)}
	if !ruleNameRe.MatchString(r.name) {
		t.Fail("name", "%q: want 1-64 letters, digits, '_', '.' or '-', e.g. name = \"SUBJECT_LOTTERY\"", r.name)
	}
	if _, ok := t.M["score"]; !ok {
		t.Fail("score", "missing; give the points the rule adds, e.g. score = 2.5 (negative to lower the score)")
	}
	_, hasBody := t.M["body"]
	_, hasPattern := t.M["pattern"]
	key := "pattern"
	switch {
	case r.header != "" && hasBody:
		t.Fail("body", "a rule matches a header field or the body, not both; make two rules")
	case r.header != "":
		if !fieldNameRe.MatchString(r.header) {
			t.Fail("header", "%q is not a header field name, e.g. header = \"Subject\"", r.header)
		}
		if !hasPattern {
			t.Fail("pattern", "missing; a header rule needs pattern = \"regexp\"")
		}
	case hasBody:
		key = "body"
		if hasPattern {
			t.Fail("pattern", "a body rule has its regexp in body = \"...\"; remove pattern")
		}
	default:
		t.Fail("header", "missing; give header = \"Subject\" with pattern = \"...\", or body = \"...\"")
	}
	if expr, ok := t.M[key].(string); ok {
		re, err := regexp.Compile(expr)
		switch {
		case err != nil:
			t.Fail(key, "bad regexp: %v (Go RE2 syntax, https://pkg.go.dev/regexp/syntax)", err)
		case expr == "":
			t.Fail(key, "an empty regexp matches every message; write the text to look for")
		}
		r.re = re
	} else if t.M[key] != nil {
		t.Fail(key, "got %s, want a regexp in double quotes", sdk.Describe(t.M[key]))
	}
	return r, len(*t.Errs) == before
}

// headerHits returns the header rules matching any field of their name.
// A field is tried as received and with RFC 2047 encoded words decoded,
// so a rule for "Gewinn" also matches "=?utf-8?q?Gewinn?=".
func headerHits(rules []rule, h *textproto.Header) []rule {
	var dec mime.WordDecoder
	var hits []rule
	for _, r := range rules {
		if r.header == "" {
			continue
		}
		for _, v := range h.Values(r.header) {
			decoded, err := dec.DecodeHeader(v)
			if r.re.MatchString(v) || err == nil && decoded != v && r.re.MatchString(decoded) {
				hits = append(hits, r)
				break
			}
		}
	}
	return hits
}

// bodyScanner is an io.Writer that matches body rules line by line
// against the first limit bytes of the body, as SpamAssassin only scans
// the start of a message: spam shows itself early, and a 50 MB
// attachment must not cost 50 MB of regexp work. It sees the raw body:
// text inside base64 or quoted-printable parts is not decoded.
type bodyScanner struct {
	rules []rule
	hit   []bool
	left  int64  // bytes still to scan
	line  []byte // the current line, at most maxLine bytes
}

// newBodyScanner returns nil when there are no body rules.
func newBodyScanner(rules []rule, limit int64) *bodyScanner {
	s := &bodyScanner{left: limit}
	for _, r := range rules {
		if r.header == "" {
			s.rules = append(s.rules, r)
		}
	}
	if len(s.rules) == 0 {
		return nil
	}
	s.hit = make([]bool, len(s.rules))
	s.line = make([]byte, 0, maxLine)
	return s
}

// Write never fails, so the one pass over the body goes on past the limit.
func (s *bodyScanner) Write(p []byte) (int, error) {
	n := len(p)
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	s.left -= int64(len(p))
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.add(p)
			break
		}
		s.add(p[:i])
		s.match()
		p = p[i+1:]
	}
	return n, nil
}

// add appends to the current line, matching it each time it fills.
func (s *bodyScanner) add(b []byte) {
	for len(b) > 0 {
		k := min(maxLine-len(s.line), len(b))
		s.line = append(s.line, b[:k]...)
		b = b[k:]
		if len(s.line) == maxLine {
			s.match()
		}
	}
}

func (s *bodyScanner) match() {
	line := bytes.TrimSuffix(s.line, []byte("\r"))
	for i, r := range s.rules {
		if !s.hit[i] && r.re.Match(line) {
			s.hit[i] = true
		}
	}
	s.line = s.line[:0]
}

// hits matches what is left of the last line and returns the rules that matched.
func (s *bodyScanner) hits() []rule {
	if s == nil {
		return nil
	}
	if len(s.line) > 0 {
		s.match()
	}
	var out []rule
	for i, r := range s.rules {
		if s.hit[i] {
			out = append(out, r)
		}
	}
	return out
}
