package mta

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"

	"postline/dsn"
	"postline/mtasts"
	"postline/queue"
	"postline/tlsrpt"
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

// withPolicy applies domain's published TLS policies to dest, its MX
// hosts: DANE for each host with validated TLSA records, which takes
// precedence (RFC 8461 §2), and the MTA-STS policy for the others. A
// message whose header says "TLS-Required: No" (RFC 8689 §5) waives
// both, unless it was sent with REQUIRETLS, which overrides the header.
func (r *Relayer) withPolicy(ctx context.Context, log zerolog.Logger, env *queue.Envelope, domain string,
	dest destination, open func() (io.ReadCloser, error)) (destination, *smtp.SMTPError) {
	d := r.lookupDANE(ctx, log, dest)
	policed, refused := r.withSTS(ctx, log, domain, dest, d)
	if d != nil {
		policed = r.applyDANE(policed, domain, d)
	}
	if policed.policy == dest.policy || env.RequireTLS || !tlsRequiredNo(open) {
		return policed, refused
	}
	log.Info().Str("policy", policed.policy).Msg("TLS policy waived by the message's TLS-Required: No")
	dest.policy += ", TLS-Required: No"
	return dest, nil
}

// withSTS narrows dest, domain's MX hosts, by domain's MTA-STS policy:
// in enforce mode only the hosts it lists (and those DANE covers, which
// DANE rules), over verified TLS (a host that fails is skipped, never
// tried in plaintext), and none left defers; in testing mode everything
// as before, and the log says what enforce would have refused.
func (r *Relayer) withSTS(ctx context.Context, log zerolog.Logger, domain string, dest destination,
	d *daneHosts) (destination, *smtp.SMTPError) {
	if r.STS == nil {
		return dest, nil
	}
	cached := r.STS.Policy(ctx, domain)
	if cached == nil {
		return dest, nil
	}
	p := cached.Policy
	dest.report = stsReport(domain, p)
	if p.Mode == mtasts.Testing {
		dest.policy, dest.testing = policySTSTesting, p
		return dest, nil
	}
	var listed []Host
	for _, h := range dest.hosts {
		if p.Allows(h.Name) || d.covers(h.Name) {
			listed = append(listed, h)
		} else {
			log.Warn().Str("host", h.Name).Strs("policy_mx", p.MX).Msg("mta-sts: MX host not in the policy, skipped")
		}
	}
	dest.policy = policyMTASTS
	if len(listed) == 0 {
		return dest, routeError(451, 4, 7, 5, "the MTA-STS policy of %s lists none of its MX hosts", domain)
	}
	// Sessions kept for the next message are per policy, so a session
	// opened before the policy was known is not reused under it.
	dest.hosts, dest.key, dest.dial = listed, domain+" mta-sts", dest.verifiedDial
	return dest, nil
}

// requireTLS makes dest fit for a REQUIRETLS message (RFC 8689 §4.2.1):
// verified TLS, and a next hop that offers REQUIRETLS. A host that does
// not meet them is left without the message, never sent it in
// plaintext: 550 5.7.10 (encryption needed) for TLS that fails or does
// not verify, 550 5.7.30 ("REQUIRETLS support required", RFC 8689 §7)
// for a host without the extension.
func requireTLS(dest destination) destination {
	verified := dest.verifiedDial
	dest.dial = func(ctx context.Context, host, addr string) (*Conn, error) {
		c, err := verified(ctx, host, addr)
		if err != nil {
			var tf *tlsFailure
			if errors.As(err, &tf) && tf.resultType != "" { // not a network failure, which may pass
				return nil, fmt.Errorf("mta: %s[%s]: %w", host, addr, errRequireTLS(10, tf.reply.Message))
			}
			return nil, err
		}
		if ok, _ := c.Extension("REQUIRETLS"); !ok {
			c.Close()
			return nil, fmt.Errorf("mta: %s[%s]: %w", host, addr, errRequireTLS(30, "the server does not offer REQUIRETLS"))
		}
		return c, nil
	}
	dest.key += " requiretls"
	dest.policy += ", requiretls"
	dest.requireTLS = true
	return dest
}

// errRequireTLS is the permanent failure 5.7.detail of a REQUIRETLS
// message that a host cannot take as it asks.
func errRequireTLS(detail int, why string) *smtp.SMTPError {
	return routeError(550, 5, 7, detail, "REQUIRETLS: %s", why)
}

// isRequireTLSFailure reports whether reply is errRequireTLS's.
func isRequireTLSFailure(reply *smtp.SMTPError) bool {
	e := reply.EnhancedCode
	return reply.Code == 550 && e[0] == 5 && e[1] == 7 && (e[2] == 10 || e[2] == 30)
}

// tlsRequiredNo reports whether the message's header has
// "TLS-Required: No" (RFC 8689 §5).
func tlsRequiredNo(open func() (io.ReadCloser, error)) bool {
	f, err := open()
	if err != nil {
		return false
	}
	defer f.Close()
	header, err := dsn.ReadHeaderBlock(f, 64<<10)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(header), "\r\n") {
		name, value, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(strings.TrimSpace(name), "TLS-Required") && strings.EqualFold(strings.TrimSpace(value), "No") {
			return true
		}
	}
	return false
}

// checkTesting logs what an MTA-STS policy in testing mode would have
// refused of the session c (§5: report, deliver anyway), and returns it
// as a TLS report's result type ("" for nothing).
func checkTesting(log zerolog.Logger, p *mtasts.Policy, c *Conn) string {
	var why, resultType string
	switch {
	case !p.Allows(c.Host):
		why, resultType = "the MX host is not in the policy", tlsrpt.ValidationFailure
	case !c.TLS:
		why, resultType = "no TLS", tlsrpt.StartTLSNotSupported
	case !c.Verified:
		why, resultType = "the certificate is not valid for the MX host: "+c.VerifyError.Error(), certificateFailure(c.VerifyError)
	default:
		return ""
	}
	log.Warn().Str("host", c.Host).Str("reason", why).Msg("mta-sts testing: enforce would refuse this session")
	return resultType
}

// recordSession keeps the outcome of a session with host under dest's
// policy for the TLS reports: failure is its RFC 8460 result type, ""
// for a success; c is nil when the session failed before it began.
func (r *Relayer) recordSession(log zerolog.Logger, dest destination, host, addr string, c *Conn, failure string) {
	if r.Reports == nil || dest.report == nil {
		return
	}
	tmpl := dest.report(host)
	if tmpl == nil {
		return
	}
	s := *tmpl
	s.Time, s.ReceivingMX, s.Failure = time.Now(), host, failure
	s.ReceivingIP, _, _ = net.SplitHostPort(addr)
	if c != nil && c.wire != nil {
		s.SendingIP, _, _ = net.SplitHostPort(c.wire.LocalAddr().String())
	}
	if err := r.Reports.Record(s); err != nil {
		log.Warn().Err(err).Msg("TLS session not recorded for the TLS report")
	}
}

// stsReport is what a TLS report says of domain's MTA-STS policy p.
func stsReport(domain string, p *mtasts.Policy) func(string) *tlsrpt.Session {
	s := &tlsrpt.Session{PolicyType: tlsrpt.PolicySTS, PolicyDomain: domain, PolicyStrings: p.Strings(), MXHosts: p.MX}
	return func(string) *tlsrpt.Session { return s }
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
