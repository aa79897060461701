package main

import (
	"fmt"
	"math"
	"strings"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dmarc"

	"postline/plugins/sdk"
)

// report is the score of one message and what made it.
type report struct {
	score float64
	tests []string         // names of what hit, for X-Spam-Status
	auth  []authres.Result // for Authentication-Results
}

func (r *report) hit(test string, points float64) {
	r.score += points
	r.tests = append(r.tests, test)
}

// total rounds away float noise, so that 2.1 + 2.9 reaches a threshold of 5.
func (r *report) total() float64 { return math.Round(r.score*1000) / 1000 }

func (r *report) addSPF(w weights, s spfOutcome) {
	r.auth = append(r.auth, s.ar)
	switch s.result {
	case spf.Fail:
		r.hit("SPF_FAIL", w.spfFail)
	case spf.SoftFail:
		r.hit("SPF_SOFTFAIL", w.spfSoftfail)
	}
}

func (r *report) addDKIM(w weights, d dkimOutcome) {
	r.auth = append(r.auth, d.ar...)
	if d.failed {
		r.hit("DKIM_FAIL", w.dkimFail)
	}
}

// addDMARC counts a failure by what the domain's policy asks for; p=none
// only asks for reports, so it costs nothing.
func (r *report) addDMARC(w weights, res *authres.DMARCResult, policy dmarc.Policy) {
	r.auth = append(r.auth, res)
	switch policy {
	case dmarc.PolicyReject:
		r.hit("DMARC_REJECT", w.dmarcReject)
	case dmarc.PolicyQuarantine:
		r.hit("DMARC_QUARANTINE", w.dmarcQuarantine)
	}
}

func (r *report) addDNSBL(w weights, zones []string) {
	for _, z := range zones {
		r.hit("DNSBL_"+z, w.dnsbl)
	}
}

func (r *report) addRules(hits []rule) {
	for _, h := range hits {
		r.hit(h.name, h.score)
	}
}

// action is what the score asks for: "reject" at reject_score, "junk"
// at junk_score, else "continue".
func (r *report) action(c *config) string {
	switch score := r.total(); {
	case score >= c.rejectScore:
		return "reject"
	case score >= c.junkScore:
		return "junk"
	}
	return "continue"
}

// verdict turns the score into the answer; mail that is delivered, into
// Junk or not, gets our header fields.
func (r *report) verdict(c *config) sdk.Verdict {
	switch r.action(c) {
	case "reject":
		return sdk.Reject(550, "5.7.1", fmt.Sprintf("message refused as spam (score %.1f)", r.total()))
	case "junk":
		return sdk.FileInto("Junk").With(r.edits(c)...)
	}
	return sdk.Continue().With(r.edits(c)...)
}

// edits replaces the fields a sender may have forged. RFC 8601 §5 wants
// Authentication-Results fields claiming our authserv-id removed; sdk
// removes by name only, so every one goes: fields from hosts before us
// are not ours to vouch for, and we have just checked for ourselves.
func (r *report) edits(c *config) []sdk.Edit {
	score := r.total()
	return []sdk.Edit{
		sdk.Remove("Authentication-Results"),
		sdk.Remove("X-Spam-Score"),
		sdk.Remove("X-Spam-Status"),
		sdk.Prepend("X-Spam-Status", statusValue(score >= c.junkScore, score, c.junkScore, r.tests)),
		sdk.Prepend("X-Spam-Score", fmt.Sprintf("%.1f", score)),
		sdk.Prepend("Authentication-Results", authResults(c.authservID, r.auth)),
	}
}

// authResults formats each result with authres.Format and joins them, so
// a result without properties does not leave "dkim=none ;" behind.
func authResults(id string, results []authres.Result) string {
	parts := []string{id}
	for _, res := range results {
		s := authres.Format("", []authres.Result{res})
		parts = append(parts, strings.TrimSpace(strings.TrimPrefix(s, ";")))
	}
	return strings.Join(parts, "; ")
}

// statusValue writes SpamAssassin's X-Spam-Status layout, e.g.
// "Yes, score=7.5 required=5.0 tests=SPF_FAIL,DNSBL_zen.example". The
// test list has no spaces to fold at, so it is folded here after a comma.
func statusValue(spam bool, score, required float64, tests []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s, score=%.1f required=%.1f tests=", map[bool]string{true: "Yes", false: "No"}[spam], score, required)
	if len(tests) == 0 {
		b.WriteString("none")
		return b.String()
	}
	col := len("X-Spam-Status: ") + b.Len()
	for i, t := range tests {
		// RFC 5322 §2.1.1: 78 octets a line, the comma that may follow included.
		switch {
		case i > 0 && col+1+len(t)+1 > 78:
			b.WriteString(",\r\n\t")
			col = 1
		case i > 0:
			b.WriteByte(',')
			col++
		}
		b.WriteString(t)
		col += len(t)
	}
	return b.String()
}
