package mta

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"postline/tlsrpt"
)

// TLSReporter sends the TLS reports (RFC 8460) of the sessions the
// Relayer recorded: once per Period (daily by default, by UTC day), one
// report per policy domain to each mailto: address of its "_smtp._tls"
// record.
type TLSReporter struct {
	Store    *tlsrpt.Store
	Resolver *Resolver
	Manager  *Manager
	Period   time.Duration
	Log      zerolog.Logger
}

// Run sends the reports at the end of each period until ctx ends.
func (t *TLSReporter) Run(ctx context.Context) {
	for {
		end := time.Now().Truncate(t.Period).Add(t.Period)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(end)):
		}
		t.Send(ctx, end.Add(-t.Period), end)
	}
}

// Send reports the sessions recorded before end, as of the period from
// start (or their first, if earlier: sessions left over from a time the
// MTA was down).
func (t *TLSReporter) Send(ctx context.Context, start, end time.Time) {
	sessions, err := t.Store.Take(end)
	if err != nil {
		t.Log.Error().Err(err).Msg("cannot read the TLS sessions to report")
		return
	}
	for _, s := range sessions {
		if s.Time.Before(start) {
			start = s.Time
		}
	}
	for _, domain := range tlsrpt.Domains(sessions) {
		if !t.sendDomain(ctx, sessions, domain, start, end) {
			t.keep(sessions, domain) // for the next period's report
		}
	}
}

// keep puts domain's sessions back into the store.
func (t *TLSReporter) keep(sessions []tlsrpt.Session, domain string) {
	var kept []tlsrpt.Session
	for _, s := range sessions {
		if s.PolicyDomain == domain {
			kept = append(kept, s)
		}
	}
	if err := t.Store.Record(kept...); err != nil {
		t.Log.Error().Err(err).Str("domain", domain).Msg("TLS sessions of an unsent report lost")
	}
}

// sendDomain queues domain's report to each address its record names.
// It is false when that failed for a reason that may pass (DNS, the
// queue), so the sessions wait for the next period.
func (t *TLSReporter) sendDomain(ctx context.Context, sessions []tlsrpt.Session, domain string, start, end time.Time) bool {
	log := t.Log.With().Str("domain", domain).Logger()
	txts, err := t.Resolver.LookupTXT(ctx, "_smtp._tls."+domain)
	if err != nil {
		log.Warn().Err(err).Msg("TLS report not sent: its record could not be looked up; kept for the next period")
		return false
	}
	ruas := tlsrpt.RUAs(txts)
	if len(ruas) == 0 {
		log.Info().Msg("TLS report not sent: the domain asks for none by mail")
		return true
	}
	cfg := t.Manager.Config
	own := cfg.MailDomain()
	report := tlsrpt.Build(sessions, domain, own, "postmaster@"+own, start, end)
	for i, to := range ruas {
		msg, err := tlsrpt.Message(report, domain, "postmaster@"+own, to)
		if err != nil {
			log.Error().Err(err).Msg("cannot build the TLS report")
			return true // it would fail again
		}
		// RFC 8460 §5.3: reports by mail SHOULD be DKIM-signed.
		if signed, err := signOwn(cfg, own, msg); err != nil {
			log.Warn().Err(err).Msg("TLS report not signed")
		} else {
			msg = signed
		}
		env, err := t.Manager.queueOwn(to, msg, time.Now(), false)
		if err != nil {
			log.Error().Err(err).Msg("cannot queue the TLS report; kept for the next period")
			return i > 0 // kept only when none went out: a second copy would count twice
		}
		log.Info().Str("report_id", report.ReportID).Str("to", to).Str("queue_id", env.ID).Msg("TLS report queued")
	}
	return true
}
