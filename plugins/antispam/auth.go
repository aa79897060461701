package main

import (
	"context"
	"errors"
	"net"
	"net/mail"
	"net/netip"
	"regexp"
	"strings"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/publicsuffix"
)

// maxSignatures bounds the DKIM signatures verified per message: each
// costs a DNS lookup and a pass of the body hash.
const maxSignatures = 5

// spfOutcome is the SPF verdict on the envelope sender.
type spfOutcome struct {
	result spf.Result
	domain string // the domain checked: MAIL FROM's, or HELO's for <>
	ar     *authres.SPFResult
}

// checkSPF checks the MAIL FROM identity, or for the null sender the HELO
// identity (RFC 7208 §2.4).
func checkSPF(ctx context.Context, res *resolver, ip netip.Addr, helo, sender string) spfOutcome {
	out := spfOutcome{domain: strings.ToLower(helo), ar: &authres.SPFResult{From: sender}}
	if at := strings.LastIndexByte(sender, '@'); at >= 0 {
		out.domain = strings.ToLower(sender[at+1:])
	} else {
		out.ar.Helo = helo
	}
	if !ip.IsValid() {
		out.result, out.ar.Value, out.ar.Reason = spf.None, authres.ResultNone, "no client IP"
		return out
	}
	r, err := spf.CheckHostWithSender(net.IP(ip.Unmap().AsSlice()), helo, sender,
		spf.WithResolver(res), spf.WithContext(ctx))
	out.result, out.ar.Value = r, authres.ResultValue(r)
	if r == spf.TempError || r == spf.PermError {
		out.ar.Reason = reason(err)
	}
	return out
}

// dkimOutcome sums up the message's DKIM signatures.
type dkimOutcome struct {
	passed []string // d= of every signature that verified
	failed bool     // a signature was bad and none verified
	ar     []authres.Result
}

// dkimResults turns VerifyWithOptions' answer into Authentication-Results
// entries. A body-hash or signature mismatch is "fail", a broken or
// missing key "permerror", a DNS failure "temperror" (RFC 8601 §2.7.1).
func dkimResults(verifs []*dkim.Verification, err error) dkimOutcome {
	var out dkimOutcome
	if len(verifs) == 0 {
		// go-msgauth classifies every signature problem per signature;
		// an error without verifications is reading the message failing.
		r := &authres.DKIMResult{Value: authres.ResultNone}
		if err != nil {
			r.Value, r.Reason = authres.ResultTempError, reason(err)
		}
		out.ar = append(out.ar, r)
		return out
	}
	bad := false
	for _, v := range verifs {
		r := &authres.DKIMResult{Domain: v.Domain, Identifier: v.Identifier}
		switch {
		case v.Err == nil:
			r.Value = authres.ResultPass
			out.passed = append(out.passed, strings.ToLower(v.Domain))
		case dkim.IsTempFail(v.Err):
			r.Value, r.Reason = authres.ResultTempError, reason(v.Err)
		case dkim.IsPermFail(v.Err):
			r.Value, r.Reason, bad = authres.ResultPermError, reason(v.Err), true
		default:
			r.Value, r.Reason, bad = authres.ResultFail, reason(v.Err), true
		}
		out.ar = append(out.ar, r)
	}
	// A list that adds a footer breaks the author's signature while its
	// own verifies: only a message with no good signature is penalised.
	out.failed = bad && len(out.passed) == 0
	return out
}

// dmarcPolicy is the DMARC record that governs the RFC5322.From domain.
type dmarcPolicy struct {
	from   string // the From domain, "" when there is none
	rec    *dmarc.Record
	org    bool  // rec is the organizational domain's, not from's own
	err    error // dmarc.ErrNoPolicy, a temporary or a permanent error
	reason string
}

// fromDomain returns the domain of the From field's address, or "" (with
// why) when there is not exactly one From field whose addresses share one
// domain (RFC 7489 §6.6.1 leaves such messages to local policy).
func fromDomain(h *textproto.Header) (string, string) {
	fields := h.Values("From")
	if len(fields) != 1 {
		return "", "not one From field"
	}
	addrs, err := mail.ParseAddressList(fields[0])
	if err != nil || len(addrs) == 0 {
		return "", "From field unreadable"
	}
	domain := ""
	for _, a := range addrs {
		d := strings.ToLower(strings.TrimSuffix(a.Address[strings.LastIndexByte(a.Address, '@')+1:], "."))
		if domain != "" && d != domain {
			return "", "From addresses in several domains"
		}
		domain = d
	}
	return domain, ""
}

// lookupDMARC finds the From domain's record, else its organizational
// domain's (RFC 7489 §6.6.3), the organizational domain being the public
// suffix plus one label (golang.org/x/net/publicsuffix).
func lookupDMARC(ctx context.Context, res *resolver, h *textproto.Header) dmarcPolicy {
	from, why := fromDomain(h)
	p := dmarcPolicy{from: from, reason: why}
	if from == "" {
		return p
	}
	opts := &dmarc.LookupOptions{LookupTXT: res.txtFunc(ctx)}
	p.rec, p.err = dmarc.LookupWithOptions(from, opts)
	if org := orgDomain(from); errors.Is(p.err, dmarc.ErrNoPolicy) && org != from {
		p.rec, p.err = dmarc.LookupWithOptions(org, opts)
		p.org = true
	}
	if p.err != nil && !errors.Is(p.err, dmarc.ErrNoPolicy) {
		p.reason = reason(p.err)
	}
	return p
}

// orgDomain is the registrable part of domain: "mail.example.co.uk" →
// "example.co.uk". The list's implicit "*" rule covers unknown TLDs.
func orgDomain(domain string) string {
	org, err := publicsuffix.EffectiveTLDPlusOne(domain)
	if err != nil {
		return domain
	}
	return org
}

// aligned implements identifier alignment (RFC 7489 §3.1): strict needs
// the same domain, relaxed the same organizational domain.
func aligned(mode dmarc.AlignmentMode, a, b string) bool {
	if mode == dmarc.AlignmentStrict {
		return a == b
	}
	return orgDomain(a) == orgDomain(b)
}

// evalDMARC decides DMARC (RFC 7489 §4.2): pass when SPF passed for an
// aligned MAIL FROM domain or a DKIM signature verified for an aligned
// d=. The returned policy is what a failure asks for. The pct tag is not
// sampled: a failing message always gets the policy's weight.
func evalDMARC(p dmarcPolicy, s spfOutcome, d dkimOutcome) (*authres.DMARCResult, dmarc.Policy) {
	r := &authres.DMARCResult{From: p.from, Reason: p.reason}
	switch {
	case p.from == "":
		r.Value = authres.ResultPermError
		return r, ""
	case errors.Is(p.err, dmarc.ErrNoPolicy):
		r.Value = authres.ResultNone
		return r, ""
	case dmarc.IsTempFail(p.err):
		r.Value = authres.ResultTempError
		return r, ""
	case p.err != nil:
		r.Value = authres.ResultPermError
		return r, ""
	}
	if s.result == spf.Pass && aligned(p.rec.SPFAlignment, s.domain, p.from) {
		r.Value = authres.ResultPass
		return r, ""
	}
	for _, dom := range d.passed {
		if aligned(p.rec.DKIMAlignment, dom, p.from) {
			r.Value = authres.ResultPass
			return r, ""
		}
	}
	if s.result == spf.TempError || hasTempError(d) {
		// The missing pass may be a DNS failure, which must not cost points.
		r.Value = authres.ResultTempError
		return r, ""
	}
	r.Value = authres.ResultFail
	if p.org && p.rec.SubdomainPolicy != "" {
		return r, p.rec.SubdomainPolicy
	}
	return r, p.rec.Policy
}

func hasTempError(d dkimOutcome) bool {
	for _, r := range d.ar {
		if r.(*authres.DKIMResult).Value == authres.ResultTempError {
			return true
		}
	}
	return false
}

// reason shortens an error for the reason= of Authentication-Results.
// A resolver's error text names the resolver's address ("lookup x on
// 10.0.0.53:53: dial udp 10.0.0.53:53: i/o timeout"), which has no place
// in a header; it is cut out.
func reason(err error) string {
	if err == nil {
		return ""
	}
	s := resolverAddrRe.ReplaceAllString(err.Error(), "lookup $1: ")
	return dialAddrRe.ReplaceAllString(s, "")
}

var (
	resolverAddrRe = regexp.MustCompile(`lookup (\S+) on \S+: `)
	dialAddrRe     = regexp.MustCompile(`dial \w+ \S+: `)
)
