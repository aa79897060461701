package mta

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"

	"postline/dsn"
	"postline/lmtp"
	"postline/queue"
)

// group is a set of recipients delivered in one transaction: the local
// ones to the MDA (domain ""), the others per destination domain, and
// apart those whose sender is rewritten by SRS.
type group struct {
	domain string
	srs    bool
}

// localGroup is the group of recipients delivered to the MDA.
var localGroup = group{}

// attempt delivers e's due recipients, the local ones to the MDA and the
// others per domain, records each result in the spool and bounces what
// failed for good.
func (m *Manager) attempt(ctx context.Context, e *entry) {
	log := m.Log.With().Str("queue_id", e.id).Logger()
	env, err := m.envelope(e)
	if err != nil {
		log.Error().Err(err).Msg("cannot read the envelope back; will retry in a minute")
		e.due = time.Now().Add(time.Minute) // e is ours while busy
		m.release(e, nil)
		return
	}
	now := time.Now()
	var notices []dsn.Recipient
	var tried []*queue.Recipient
	for group, rcpts := range m.dueGroups(env, now) {
		out := m.deliverGroup(ctx, env, group, rcpts)
		if ctx.Err() != nil {
			m.release(e, nil) // shutting down: the spool still has the last state
			return
		}
		for _, r := range rcpts {
			r.Attempts++
			if n := m.record(log, env, r, out, now); n != nil {
				notices = append(notices, *n)
			}
		}
		tried = append(tried, rcpts...)
	}
	m.report(log, env, notices, now)
	if env.Done() {
		// Straight to removal: a crash before it repeats the attempt,
		// which the MDA's ledger answers without a second copy, as it
		// would a crash before an update.
		m.notify(env, tried, now)
		m.release(e, env)
		return
	}
	if err := m.Queue.Update(env); err != nil {
		log.Error().Err(err).Msg("cannot record delivery results; will retry")
		m.release(e, nil)
		return
	}
	m.notify(env, tried, now)
	m.release(e, env)
}

// notify tells the submitter's webhook of the results just recorded.
func (m *Manager) notify(env *queue.Envelope, tried []*queue.Recipient, now time.Time) {
	for _, r := range tried {
		m.Events.Notify(env, r, now)
	}
}

// dueGroups returns env's due recipients: local ones under localGroup,
// others under their domain (one transaction per destination domain).
func (m *Manager) dueGroups(env *queue.Envelope, now time.Time) map[group][]*queue.Recipient {
	groups := map[group][]*queue.Recipient{}
	for _, r := range env.Recipients {
		if r.State != queue.Pending || r.NextAttempt.After(now) || !m.deliverable(env, r) {
			continue
		}
		g := localGroup
		if !m.isLocal(r.Address) {
			_, g.domain, _ = splitAddress(r.Address)
			g.srs = m.rewritesSender(env, r)
		}
		groups[g] = append(groups[g], r)
	}
	return groups
}

// rewritesSender reports whether r's mail leaves with an SRS sender: an
// alias forwarded it out, and SPF would fail for its sender's domain at
// the destination. Mail from a local domain is ours to send, and <>
// (a bounce) has no domain to check: neither is rewritten.
func (m *Manager) rewritesSender(env *queue.Envelope, r *queue.Recipient) bool {
	return m.SRS != nil && r.Forwarded && env.From != "" && !m.isLocal(env.From)
}

func (m *Manager) deliverGroup(ctx context.Context, env *queue.Envelope, g group, rcpts []*queue.Recipient) Outcome {
	addrs := make([]string, len(rcpts))
	for i, r := range rcpts {
		addrs[i] = r.Address
	}
	open := func() (io.ReadCloser, error) { return m.Queue.OpenMessage(env.ID) }
	if g != localGroup {
		if g.srs {
			env = m.forwarded(env)
		}
		return m.Relay(ctx, env, g.domain, addrs, open)
	}
	res, err := m.deliverLocal(ctx, env, addrs, open)
	if err != nil {
		return allSame(addrs, &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 1},
			Message: err.Error()}, "")
	}
	return Outcome{Results: res}
}

// forwarded is env as it leaves for a forward: a copy with its sender
// rewritten by SRS (RFC 7208 §10.1.3 leaves forwarders this remedy).
func (m *Manager) forwarded(env *queue.Envelope) *queue.Envelope {
	sender, err := m.SRS.Rewrite(env.From, time.Now())
	if err != nil { // a sender the MTA accepted has local@domain: cannot happen
		m.Log.Warn().Err(err).Str("queue_id", env.ID).Msg("sender not rewritten")
		return env
	}
	c := *env
	c.From = sender
	return &c
}

func (m *Manager) deliverLocal(ctx context.Context, env *queue.Envelope, rcpts []string,
	open func() (io.ReadCloser, error)) (lmtp.Result, error) {
	f, err := open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	msg := lmtp.Message{QueueID: env.ID, From: env.From, Recipients: rcpts,
		Body8Bit: env.Body8Bit, SMTPUTF8: env.SMTPUTF8, Folder: env.Folder, Data: f}
	dctx, cancel := context.WithTimeout(ctx, m.Config.SMTPTimeout.D()*2)
	defer cancel()
	return m.Deliver(dctx, msg)
}

// record applies one recipient's outcome: delivered; failed for good (a
// 5xx, or a 4xx once the queue lifetime is over); or deferred with a
// growing backoff. It returns what the sender is to be told of it, if
// anything (see notice).
func (m *Manager) record(log zerolog.Logger, env *queue.Envelope, r *queue.Recipient, out Outcome, now time.Time) *dsn.Recipient {
	reply, answered := out.Results[r.Address]
	if !answered { // never count silence as delivery
		reply = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 0}, Message: "no result for this recipient"}
	}
	local := m.isLocal(r.Address)
	relay := out.RemoteMTA
	if local {
		relay = "mda"
	}
	l := log.With().Str("rcpt", r.Address).Int("attempt", r.Attempts).Str("relay", relay).Logger()
	if out.TLS != "" {
		r.TLS = out.TLS
	}
	if reply == nil {
		r.State, r.LastError = queue.Delivered, ""
		l.Info().Msg("delivered")
		m.Metrics.attempted(local, "delivered")
		return successNotice(l, r, out, local, now)
	}
	r.LastError = formatReply(reply)
	status, final := m.finalStatus(env, r, reply, now)
	if !final {
		r.NextAttempt = now.Add(m.backoff(r))
		l.Warn().Str("error", r.LastError).Time("next_attempt", r.NextAttempt).Msg("delivery deferred")
		m.Metrics.attempted(local, "deferred")
		return m.delayNotice(l, env, r, reply, out, now)
	}
	r.State = queue.Failed
	m.Metrics.attempted(local, "failed")
	l.Error().Int("code", reply.Code).Str("error", r.LastError).Msg("delivery failed permanently")
	return notice(l, r, dsn.Recipient{Action: dsn.ActionFailed, Status: status,
		RemoteMTA: out.RemoteMTA, Diagnostic: formatReply(reply), LastAttempt: now})
}

// notice fills n in for r and returns it if r's NOTIFY asks for a
// report of n's action (RFC 3461 §4.1; without NOTIFY, failures and
// delays are reported).
func notice(l zerolog.Logger, r *queue.Recipient, n dsn.Recipient) *dsn.Recipient {
	n.Address, n.ORcpt = r.Address, dsn.ORcpt(r.ORcpt)
	if !dsn.Notify(r.Notify).Wants(n.Action) {
		if r.Notify != "" {
			l.Info().Str("action", n.Action).Str("notify", r.Notify).Msg("not reported: NOTIFY does not ask for it")
		}
		return nil
	}
	return &n
}

// successNotice is the report of a delivery that NOTIFY=SUCCESS asked
// for: "delivered" into a local mailbox; "relayed" to a next hop without
// DSN; none for a next hop that offered DSN, which was given the request
// and reports itself (RFC 3461 §5.2.2).
func successNotice(l zerolog.Logger, r *queue.Recipient, out Outcome, local bool, now time.Time) *dsn.Recipient {
	if r.Notify == "" || !local && out.DSN {
		return nil
	}
	action := dsn.ActionDelivered
	if !local {
		action = dsn.ActionRelayed
	}
	return notice(l, r, dsn.Recipient{Action: action, Status: "2.0.0", RemoteMTA: out.RemoteMTA, LastAttempt: now})
}

// delayNotice is the one delay warning of a recipient still deferred
// mta.delay_warning after its message arrived (Postfix's
// delay_warning_time), unless NOTIFY leaves DELAY out. It is decided
// once per recipient, whatever NOTIFY says, so r.Warned is set either way.
func (m *Manager) delayNotice(l zerolog.Logger, env *queue.Envelope, r *queue.Recipient,
	reply *smtp.SMTPError, out Outcome, now time.Time) *dsn.Recipient {
	wait := m.Config.MTA.DelayWarning.D()
	if wait <= 0 || r.Warned || now.Sub(env.Received) < wait {
		return nil
	}
	r.Warned = true
	return notice(l, r, dsn.Recipient{Action: dsn.ActionDelayed, Status: statusOf(reply),
		RemoteMTA: out.RemoteMTA, Diagnostic: formatReply(reply), LastAttempt: now,
		WillRetryUntil: env.Received.Add(m.Config.MTA.QueueLifetime.D())})
}

// finalStatus tells whether a failed attempt ends r's delivery and with
// which status: a 5xx as it came; a 4xx once the queue lifetime is over
// (RFC 3463 4.4.7, delivery time expired); a local mailbox still full
// mda.quota_grace after the message arrived (5.2.2). It notes the reason
// in r.LastError.
func (m *Manager) finalStatus(env *queue.Envelope, r *queue.Recipient, reply *smtp.SMTPError, now time.Time) (string, bool) {
	age := now.Sub(env.Received)
	switch {
	case reply.Code >= 500:
		return statusOf(reply), true
	case reply.EnhancedCode == smtp.EnhancedCode{4, 2, 2} && m.isLocal(r.Address) && age >= m.Config.MDA.QuotaGrace.D():
		r.LastError = fmt.Sprintf("mailbox still full after %s: %s", m.Config.MDA.QuotaGrace.D(), r.LastError)
		return "5.2.2", true
	case age >= m.Config.MTA.QueueLifetime.D():
		r.LastError = fmt.Sprintf("gave up after %s; last error: %s", m.Config.MTA.QueueLifetime.D(), r.LastError)
		return "4.4.7", true
	}
	return "", false
}

// backoff is the wait before r's next attempt: from 1 s doubling to
// mta.local_retry_max for the MDA, from mta.retry_min doubling to
// mta.retry_max for other hosts.
func (m *Manager) backoff(r *queue.Recipient) time.Duration {
	c := m.Config.MTA
	if m.isLocal(r.Address) {
		return localBackoff(r.Attempts, c.LocalRetryMax.D())
	}
	return doubling(c.RetryMin.D(), r.Attempts, c.RetryMax.D())
}

func localBackoff(attempts int, max time.Duration) time.Duration {
	return doubling(time.Second, attempts, max)
}

func doubling(first time.Duration, attempts int, max time.Duration) time.Duration {
	d := first
	for i := 1; i < attempts && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

func formatReply(r *smtp.SMTPError) string {
	return fmt.Sprintf("%d %s %s", r.Code, statusOf(r), r.Message)
}

// statusOf is the reply's enhanced status code, or class.0.0 without one.
func statusOf(r *smtp.SMTPError) string {
	e := r.EnhancedCode
	if e == smtp.EnhancedCodeNotSet || e == smtp.NoEnhancedCode {
		return fmt.Sprintf("%d.0.0", r.Code/100)
	}
	return fmt.Sprintf("%d.%d.%d", e[0], e[1], e[2])
}
