package mta

import (
	"context"
	"fmt"

	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"

	"postline/mtasts"
)

// TLS policies a relay runs under, as the log and `postline queue show`
// name them.
const (
	policyOpportunistic = "opportunistic" // STARTTLS when offered, any certificate (RFC 7435)
	policyNextHop       = "next hop"      // a relayhost or route: its own rules (hop.go)
	policyMTASTS        = "mta-sts"       // RFC 8461 enforce: listed MX, verified TLS
	policySTSTesting    = "mta-sts testing"
)

// DialVerified connects to addr of host with STARTTLS required and the
// certificate verified for host: no plaintext, no fallback.
func (d *Dialer) DialVerified(ctx context.Context, host, addr string) (*Conn, error) {
	c, err := d.dial(ctx, host, addr, tlsVerify)
	if err != nil {
		return nil, fmt.Errorf("mta: %s[%s]: %w", host, addr, err)
	}
	return c, nil
}

// withSTS narrows dest, domain's MX hosts, by domain's MTA-STS policy:
// in enforce mode only the hosts it lists, over verified TLS (a host
// that fails is skipped, never tried in plaintext), and none listed
// defers; in testing mode everything as before, and the log says what
// enforce would have refused.
func (r *Relayer) withSTS(ctx context.Context, log zerolog.Logger, domain string, dest destination) (destination, *smtp.SMTPError) {
	if r.STS == nil {
		return dest, nil
	}
	cached := r.STS.Policy(ctx, domain)
	if cached == nil {
		return dest, nil
	}
	p := cached.Policy
	if p.Mode == mtasts.Testing {
		dest.policy, dest.testing = policySTSTesting, p
		return dest, nil
	}
	var listed []Host
	for _, h := range dest.hosts {
		if p.Allows(h.Name) {
			listed = append(listed, h)
		} else {
			log.Warn().Str("host", h.Name).Strs("policy_mx", p.MX).Msg("mta-sts: MX host not in the policy, skipped")
		}
	}
	dest.policy = policyMTASTS
	if len(listed) == 0 {
		return dest, &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 5},
			Message: fmt.Sprintf("the MTA-STS policy of %s lists none of its MX hosts", domain)}
	}
	// Sessions kept for the next message are per policy, so a session
	// opened before the policy was known is not reused under it.
	dest.hosts, dest.key, dest.dial = listed, domain+" mta-sts", r.Dialer.DialVerified
	return dest, nil
}

// checkTesting logs what an MTA-STS policy in testing mode would have
// refused of the session c (§5: report, deliver anyway).
func checkTesting(log zerolog.Logger, p *mtasts.Policy, c *Conn) {
	why := ""
	switch {
	case !p.Allows(c.Host):
		why = "the MX host is not in the policy"
	case !c.TLS:
		why = "no TLS"
	case !c.Verified:
		why = "the certificate is not valid for the MX host: " + c.VerifyError.Error()
	default:
		return
	}
	log.Warn().Str("host", c.Host).Str("reason", why).Msg("mta-sts testing: enforce would refuse this session")
}

// describeTLS is what a session had, for the queue: the policy, then
// the TLS version and whether the certificate was verified.
func describeTLS(policy string, c *Conn) string {
	switch {
	case !c.TLS:
		return policy + ", no TLS"
	case c.Verified:
		return policy + ", " + c.TLSVersion + ", certificate verified"
	}
	return policy + ", " + c.TLSVersion + ", certificate not verified"
}
