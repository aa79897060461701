package msa

import (
	"errors"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the MSA's Prometheus counters, for msa.metrics. A nil
// *Metrics counts nothing.
type Metrics struct {
	logins      *prometheus.CounterVec // by result: ok, failed, locked
	submissions *prometheus.CounterVec // by result: accepted, refused
}

// NewMetrics registers the MSA's metrics in reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postline_msa_logins_total",
			Help: "AUTH attempts, by result: ok, failed, locked (refused while locked out)."}, []string{"result"}),
		submissions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postline_msa_submissions_total",
			Help: "Messages at the end of DATA, by result: accepted (queued or discarded by a filter) or refused."},
			[]string{"result"}),
	}
	reg.MustRegister(m.logins, m.submissions)
	return m
}

func (m *Metrics) login(result string) {
	if m != nil {
		m.logins.WithLabelValues(result).Inc()
	}
}

// submitted counts the reply to the end of DATA.
func (m *Metrics) submitted(reply error) {
	if m == nil {
		return
	}
	var serr *smtp.SMTPError
	result := "refused"
	if errors.As(reply, &serr) && serr.Code == 250 {
		result = "accepted"
	}
	m.submissions.WithLabelValues(result).Inc()
}
