package mta

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the MTA's Prometheus counters, for mta.metrics. Labels
// stay few (no addresses or domains), so their number stays bounded. A
// nil *Metrics counts nothing.
type Metrics struct {
	queued   *prometheus.CounterVec // by source
	refused  *prometheus.CounterVec // by stage and class
	attempts *prometheus.CounterVec // by route and result, per recipient
	bounces  prometheus.Counter
	totals   totals // the same, summed, for `postline status`
}

// totals count since the MTA started.
type totals struct {
	since                                        time.Time
	queued, delivered, deferred, failed, bounced atomic.Uint64
}

// Totals are the MTA's counts since it started, for `postline status`.
type Totals struct {
	Since     time.Time `json:"since"`
	Queued    uint64    `json:"queued"`    // messages accepted
	Delivered uint64    `json:"delivered"` // recipients delivered
	Deferred  uint64    `json:"deferred"`  // attempts deferred
	Failed    uint64    `json:"failed"`    // recipients failed for good
	Bounced   uint64    `json:"bounced"`   // bounces queued
}

// Totals returns the counts since start; a nil *Metrics has none.
func (m *Metrics) Totals() Totals {
	if m == nil {
		return Totals{}
	}
	t := &m.totals
	return Totals{Since: t.since, Queued: t.queued.Load(), Delivered: t.delivered.Load(),
		Deferred: t.deferred.Load(), Failed: t.failed.Load(), Bounced: t.bounced.Load()}
}

// NewMetrics registers the MTA's metrics in reg; queueLen reports the
// number of queued messages at each scrape.
func NewMetrics(reg prometheus.Registerer, queueLen func() float64) *Metrics {
	m := &Metrics{
		queued: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postline_mta_messages_queued_total",
			Help: "Messages accepted into the queue, by source: internet or submission (the MSA)."}, []string{"source"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postline_mta_refused_total",
			Help: "Refusals sent to SMTP clients, by stage (rcpt, data) and class (4xx, 5xx)."}, []string{"stage", "class"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postline_mta_delivery_attempts_total",
			Help: "Delivery attempts per recipient, by route (local, relay) and result (delivered, deferred, failed)."},
			[]string{"route", "result"}),
		bounces: prometheus.NewCounter(prometheus.CounterOpts{Name: "postline_mta_bounces_total",
			Help: "Delivery status notifications queued to senders."}),
	}
	queue := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "postline_mta_queue_messages",
		Help: "Messages in the queue now."}, queueLen)
	reg.MustRegister(m.queued, m.refused, m.attempts, m.bounces, queue)
	m.totals.since = time.Now()
	return m
}

func (m *Metrics) messageQueued(trusted bool) {
	if m == nil {
		return
	}
	source := "internet"
	if trusted {
		source = "submission"
	}
	m.queued.WithLabelValues(source).Inc()
	m.totals.queued.Add(1)
}

func (m *Metrics) clientRefused(stage string, code int) {
	if m == nil || code < 400 {
		return
	}
	m.refused.WithLabelValues(stage, map[bool]string{true: "4xx", false: "5xx"}[code < 500]).Inc()
}

func (m *Metrics) attempted(local bool, result string) {
	if m == nil {
		return
	}
	route := "relay"
	if local {
		route = "local"
	}
	m.attempts.WithLabelValues(route, result).Inc()
	switch result {
	case "delivered":
		m.totals.delivered.Add(1)
	case "deferred":
		m.totals.deferred.Add(1)
	case "failed":
		m.totals.failed.Add(1)
	}
}

func (m *Metrics) bounced() {
	if m != nil {
		m.bounces.Inc()
		m.totals.bounced.Add(1)
	}
}
