package mta

import (
	"bytes"
	"postline/dsn"
	"time"

	"github.com/rs/zerolog"

	"postline/address"
	"postline/queue"
)

// bounce queues one delivery status notification (RFC 3464) to env's
// sender for the recipients that failed in this attempt. It is queued
// before env's new state is written, so a crash in between can repeat a
// bounce but never lose one.
func (m *Manager) bounce(log zerolog.Logger, env *queue.Envelope, failed []dsn.Recipient, now time.Time) {
	if len(failed) == 0 {
		return
	}
	if !dsn.ShouldBounce(env.From) {
		log.Warn().Int("recipients", len(failed)).Msg("failure of a message from <> dropped, not bounced")
		return
	}
	orig, err := m.Queue.OpenMessage(env.ID)
	if err != nil {
		log.Error().Err(err).Msg("cannot read message to bounce")
		return
	}
	defer orig.Close()
	msg, err := dsn.Build(dsn.Report{ReportingMTA: m.Config.Hostname, QueueID: env.ID,
		OriginalSender: env.From, ArrivalDate: env.Received, Now: now, Recipients: failed}, orig)
	if err != nil {
		log.Error().Err(err).Msg("cannot build bounce")
		return
	}
	if msg, err = signOwn(m.Config, m.Config.Hostname, msg); err != nil {
		log.Warn().Err(err).Msg("bounce not signed")
	}
	b := &queue.Envelope{ID: queue.NewID(now), From: "", Received: now, Relay: true,
		SMTPUTF8:   !address.IsASCII(env.From),
		Recipients: []*queue.Recipient{{Address: env.From, State: queue.Pending}}}
	if err := m.Queue.Store(b, bytes.NewReader(msg)); err != nil {
		log.Error().Err(err).Msg("cannot queue bounce")
		return
	}
	log.Info().Str("bounce_id", b.ID).Str("to", env.From).Int("recipients", len(failed)).Msg("bounce queued")
	m.Metrics.bounced()
	m.Add(b)
}
