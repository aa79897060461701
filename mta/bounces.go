package mta

import (
	"bytes"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"postline/address"
	"postline/dsn"
	"postline/queue"
)

// report queues one delivery status notification (RFC 3464) to env's
// sender for the recipients of this attempt that have something to
// report (failed, delayed, delivered or relayed). It is queued before
// env's new state is written, so a crash in between can repeat a report
// but never lose one.
func (m *Manager) report(log zerolog.Logger, env *queue.Envelope, rcpts []dsn.Recipient, now time.Time) {
	if len(rcpts) == 0 {
		return
	}
	kind := reportKind(rcpts)
	if !dsn.ShouldBounce(env.From) {
		if kind == "bounce" {
			log.Warn().Int("recipients", len(rcpts)).Msg("failure of a message from <> dropped, not bounced")
		} else {
			log.Info().Int("recipients", len(rcpts)).Msg(kind + " for a message from <> dropped")
		}
		return
	}
	msg, err := m.buildReport(env, rcpts, now)
	if err != nil {
		log.Error().Err(err).Msg("cannot build " + kind)
		return
	}
	// RFC 8689 §5: a report on a REQUIRETLS message, which carries its
	// header or more, travels with REQUIRETLS too.
	b, err := m.queueOwn(env.From, msg, now, env.RequireTLS)
	if err != nil {
		log.Error().Err(err).Msg("cannot queue " + kind)
		return
	}
	log.Info().Str("bounce_id", b.ID).Str("to", env.From).Int("recipients", len(rcpts)).Msg(kind + " queued")
	if kind == "bounce" {
		m.Metrics.bounced()
	}
}

// queueOwn queues msg, mail this host writes itself (a report), from the
// null sender to: it may go to any domain, and nothing bounces back. A
// report to one of our SRS addresses (mail we forwarded, sent back to a
// local user who could not take it) goes to the original sender.
func (m *Manager) queueOwn(to string, msg []byte, now time.Time, requireTLS bool) (*queue.Envelope, error) {
	to = m.unSRS(to, now)
	env := &queue.Envelope{ID: queue.NewID(now), From: "", Received: now, Relay: true, Size: int64(len(msg)),
		SMTPUTF8: !address.IsASCII(to), RequireTLS: requireTLS,
		Recipients: []*queue.Recipient{{Address: to, State: queue.Pending}}}
	if err := m.Queue.Store(env, bytes.NewReader(msg)); err != nil {
		return nil, err
	}
	m.Add(env)
	return env, nil
}

// reportKind names a report in the log: "bounce" when a recipient
// failed, else "delay warning" or "success report".
func reportKind(rcpts []dsn.Recipient) string {
	kind := "success report"
	for _, r := range rcpts {
		switch r.Action {
		case dsn.ActionFailed:
			return "bounce"
		case dsn.ActionDelayed:
			kind = "delay warning"
		}
	}
	return kind
}

// buildReport is the report on rcpts, DKIM-signed when the hostname's
// domain has a key.
func (m *Manager) buildReport(env *queue.Envelope, rcpts []dsn.Recipient, now time.Time) ([]byte, error) {
	orig, err := m.Queue.OpenMessage(env.ID)
	if err != nil {
		return nil, fmt.Errorf("read the message: %w", err)
	}
	defer orig.Close()
	msg, err := dsn.Build(dsn.Report{ReportingMTA: m.Config.Hostname, QueueID: env.ID, EnvID: env.EnvID,
		OriginalSender: env.From, ArrivalDate: env.Received, Now: now, Return: env.Return, Recipients: rcpts}, orig)
	if err != nil {
		return nil, err
	}
	signed, err := signOwn(m.Config, m.Config.Hostname, msg)
	if err != nil {
		m.Log.Warn().Err(err).Str("queue_id", env.ID).Msg("report not signed")
		return msg, nil
	}
	return signed, nil
}

// unSRS is the original sender behind addr when addr is a valid SRS
// address of ours, else addr.
func (m *Manager) unSRS(addr string, now time.Time) string {
	if orig, err := m.SRS.ReverseAddress(addr, now); err == nil {
		return orig
	}
	return addr
}
