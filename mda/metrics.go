package mda

import (
	"errors"
	"strings"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the MDA's Prometheus counters, for mda.metrics. A nil
// *Metrics counts nothing.
type Metrics struct {
	copies *prometheus.CounterVec // by result
}

// NewMetrics registers the MDA's metrics in reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{copies: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postline_mda_copies_total",
		Help: "Recipients' copies, by result: delivered, duplicate (delivered before, not written again), " +
			"discarded (by a filter), deferred (4xx) or refused (5xx)."}, []string{"result"})}
	reg.MustRegister(m.copies)
	return m
}

// copied counts the LMTP reply for one recipient's copy.
func (m *Metrics) copied(reply error) {
	if m == nil {
		return
	}
	var serr *smtp.SMTPError
	result := "deferred"
	if errors.As(reply, &serr) {
		switch {
		case serr.Code >= 500:
			result = "refused"
		case serr.Code >= 400:
			result = "deferred"
		case strings.HasPrefix(serr.Message, "Ok: delivered before"):
			result = "duplicate"
		case strings.HasPrefix(serr.Message, "Ok: discarded"):
			result = "discarded"
		default:
			result = "delivered"
		}
	}
	m.copies.WithLabelValues(result).Inc()
}
