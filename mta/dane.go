package mta

import (
	"context"
	"crypto/x509"
	"fmt"
	"postline/tlsrpt"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"

	"postline/dane"
)

// policyDANE names sessions under RFC 7672's rules.
const policyDANE = "dane"

// DialDANE connects to addr of host with STARTTLS required and the
// certificate checked against host's usable TLSA records (none usable:
// any certificate, but TLS all the same, RFC 7672 §2.2).
func (d *Dialer) DialDANE(ctx context.Context, host, addr string, usable []dane.Record) (*Conn, error) {
	dd := *d
	dd.verifier = func(chain []*x509.Certificate, host string) error {
		return dane.Verify(usable, chain, host, time.Now())
	}
	c, err := dd.dial(ctx, host, addr, tlsVerify)
	if err != nil {
		return nil, fmt.Errorf("mta: %s[%s]: %w", host, addr, err)
	}
	return c, nil
}

// withDANE applies DANE (RFC 7672) to dest when one of its hosts, found
// through validated MX and address answers, has validated TLSA records
// for the port: those hosts only over TLS matching their records (a
// mismatch defers, 4.7.10), the others as before. A TLSA lookup that
// fails for such a host makes it unusable now, as §2.2 asks: an attacker
// could otherwise hide the records. ok is false when DANE does not apply.
func (r *Relayer) withDANE(ctx context.Context, log zerolog.Logger, domain string, dest destination) (destination, bool) {
	tlsa, failed := map[string][]dane.Record{}, map[string]error{}
	for _, h := range dest.hosts {
		if !h.Secure {
			continue
		}
		recs, secure, err := r.Resolver.LookupTLSA(ctx, dest.port, h.Name)
		switch {
		case err != nil:
			failed[h.Name] = err
		case secure && len(recs) > 0:
			tlsa[h.Name] = dane.Usable(recs)
			log.Info().Str("host", h.Name).Int("tlsa", len(recs)).Int("usable", len(tlsa[h.Name])).Msg("dane: TLSA records found")
		}
	}
	if len(tlsa) == 0 && len(failed) == 0 {
		return dest, false
	}
	plain, verified := dest.dial, dest.verifiedDial
	pick := func(fallback func(context.Context, string, string) (*Conn, error)) func(context.Context, string, string) (*Conn, error) {
		return func(ctx context.Context, host, addr string) (*Conn, error) {
			if err := failed[host]; err != nil {
				return nil, &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 5},
					Message: "DANE: the TLSA lookup for " + host + " failed: " + err.Error()}
			}
			if recs, ok := tlsa[host]; ok {
				return r.Dialer.DialDANE(ctx, host, addr, recs)
			}
			return fallback(ctx, host, addr)
		}
	}
	dest.dial, dest.verifiedDial = pick(plain), pick(verified)
	dest.policy, dest.key = policyDANE, dest.key+" dane"
	dest.report = daneReport(domain, tlsa)
	return dest, true
}

// daneReport is what a TLS report says of the TLSA records of each host
// that has some (RFC 8460 §4.4: policy-type tlsa, one policy per host).
func daneReport(domain string, tlsa map[string][]dane.Record) func(string) *tlsrpt.Session {
	return func(host string) *tlsrpt.Session {
		recs, ok := tlsa[host]
		if !ok {
			return nil
		}
		var strs []string
		for _, r := range recs {
			strs = append(strs, fmt.Sprintf("%d %d %d %x", r.Usage, r.Selector, r.MatchingType, r.Data))
		}
		return &tlsrpt.Session{PolicyType: tlsrpt.PolicyTLSA, PolicyDomain: domain, PolicyStrings: strs, MXHosts: []string{host}}
	}
}
