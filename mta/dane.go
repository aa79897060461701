package mta

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"postline/dane"
	"postline/tlsrpt"
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
	if len(usable) == 0 { // encrypted, but nothing was authenticated
		c.Verified, c.VerifyError = false, errNoUsableTLSA
	}
	return c, nil
}

var errNoUsableTLSA = errors.New("dane: no usable TLSA record; TLS without authentication (RFC 7672 §2.2)")

// daneHosts is what DANE (RFC 7672) says of a destination's hosts.
type daneHosts struct {
	// tlsa holds the usable records of each host that has validated
	// TLSA records (none usable: TLS without authentication, §2.2).
	tlsa map[string][]dane.Record
	// failed holds hosts found through validated answers whose TLSA
	// lookup failed: unusable now, as §2.2 asks, since an attacker could
	// otherwise hide the records.
	failed map[string]error
}

// covers reports whether DANE rules host's sessions.
func (d *daneHosts) covers(host string) bool {
	if d == nil {
		return false
	}
	_, ok := d.tlsa[host]
	_, failed := d.failed[host]
	return ok || failed
}

// lookupDANE looks up the TLSA records of dest's hosts found through
// validated MX and address answers; nil when no host has any.
func (r *Relayer) lookupDANE(ctx context.Context, log zerolog.Logger, dest destination) *daneHosts {
	d := &daneHosts{tlsa: map[string][]dane.Record{}, failed: map[string]error{}}
	for _, h := range dest.hosts {
		if !h.Secure {
			continue
		}
		recs, secure, err := r.Resolver.LookupTLSA(ctx, dest.port, h.Name)
		switch {
		case err != nil:
			d.failed[h.Name] = err
		case secure && len(recs) > 0:
			d.tlsa[h.Name] = dane.Usable(recs)
			log.Info().Str("host", h.Name).Int("tlsa", len(recs)).Int("usable", len(d.tlsa[h.Name])).Msg("dane: TLSA records found")
		}
	}
	if len(d.tlsa) == 0 && len(d.failed) == 0 {
		return nil
	}
	return d
}

// applyDANE makes the hosts DANE covers reachable only over TLS that
// matches their records (a mismatch defers, 4.7.10); the others keep
// dest's rules (an MTA-STS policy's, or opportunistic ones). For a
// message that needs authenticated TLS (verifiedDial: REQUIRETLS), a
// host whose records are all unusable is held to the WebPKI instead.
func (r *Relayer) applyDANE(dest destination, domain string, d *daneHosts) destination {
	pick := func(other func(context.Context, string, string) (*Conn, error), authenticated bool) func(context.Context, string, string) (*Conn, error) {
		return func(ctx context.Context, host, addr string) (*Conn, error) {
			if err := d.failed[host]; err != nil {
				return nil, routeError(451, 4, 7, 5, "DANE: the TLSA lookup for %s failed: %v", host, err)
			}
			recs, ok := d.tlsa[host]
			if !ok || authenticated && len(recs) == 0 {
				return other(ctx, host, addr)
			}
			return r.Dialer.DialDANE(ctx, host, addr, recs)
		}
	}
	dest.dial, dest.verifiedDial = pick(dest.dial, false), pick(dest.verifiedDial, true)
	if dest.policy == policyMTASTS {
		dest.policy = policyDANE + "+" + policyMTASTS
	} else {
		dest.policy = policyDANE
	}
	dest.key += " dane"
	dest.report = daneReport(domain, d.tlsa, dest.report)
	return dest
}

// daneReport is what a TLS report says of the TLSA records of each host
// that has some (RFC 8460 §4.4: policy-type tlsa, one policy per host);
// other hosts are reported as other says.
func daneReport(domain string, tlsa map[string][]dane.Record, other func(string) *tlsrpt.Session) func(string) *tlsrpt.Session {
	return func(host string) *tlsrpt.Session {
		recs, ok := tlsa[host]
		if !ok {
			if other == nil {
				return nil
			}
			return other(host)
		}
		var strs []string
		for _, r := range recs {
			strs = append(strs, fmt.Sprintf("%d %d %d %x", r.Usage, r.Selector, r.MatchingType, r.Data))
		}
		return &tlsrpt.Session{PolicyType: tlsrpt.PolicyTLSA, PolicyDomain: domain, PolicyStrings: strs, MXHosts: []string{host}}
	}
}
