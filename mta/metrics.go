package mta

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the MTA's Prometheus counters, for mta.metrics. Labels
// stay few (no addresses or domains), so their number stays bounded. A
// nil *Metrics counts nothing.
type Metrics struct {
	queued   *prometheus.CounterVec // by source
	refused  *prometheus.CounterVec // by stage and class
	attempts *prometheus.CounterVec // by route and result, per recipient
	bounces  prometheus.Counter
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
}

func (m *Metrics) bounced() {
	if m != nil {
		m.bounces.Inc()
	}
}
