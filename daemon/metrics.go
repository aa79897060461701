package daemon

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

// ServeMetrics serves reg's metrics for Prometheus at http://addr/metrics
// until ctx ends; with addr "" it does nothing. A port it cannot bind is
// logged, not fatal: mail goes on without metrics.
func ServeMetrics(ctx context.Context, log zerolog.Logger, addr string, reg *prometheus.Registry) {
	if addr == "" {
		return
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		log.Error().Err(err).Str("metrics", addr).Msg("cannot serve metrics")
		return
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	log.Info().Str("metrics", addr).Msg("serving metrics")
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error().Err(err).Msg("metrics server stopped")
	}
}
