package main

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"postline/config"
	"postline/daemon"
	"postline/guard"
	"postline/msa"
	"postline/msa/httpapi"
	"postline/outcomes"
	"postline/users"
)

// newHTTPServer is the HTTP submission API (docs/http-api.md), in front
// of the same submission path as SMTP (be.Submit).
func newHTTPServer(cfg *config.Config, log zerolog.Logger, be *msa.Backend, tokens *users.Tokens, tlsConfig *tls.Config) *http.Server {
	api := &httpapi.Server{Config: cfg, Backend: be, Tokens: tokens, Log: log,
		Status: func(id, user string) (*outcomes.Message, error) {
			return outcomes.Ask(cfg.MTAStatusSocket(), outcomes.Request{ID: id, User: user}, 10*time.Second)
		}}
	return &http.Server{
		Handler:           api.Handler(),
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 30 * time.Second,
		ReadTimeout:       cfg.SMTPTimeout.D(), // a whole body, as slow as an SMTP client may be
		WriteTimeout:      cfg.SMTPTimeout.D() + time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          daemon.StdLogger(log),
	}
}

// listenHTTP binds msa.http (TLS with the certificate of every listener)
// and msa.http_plain (loopback only, checked by config), while still root.
func listenHTTP(cfg *config.Config, log zerolog.Logger, tlsConfig *tls.Config) []net.Listener {
	var ls []net.Listener
	for _, a := range cfg.MSA.HTTP {
		limited := guard.LimitListener(listen(log, a), guard.Limits(cfg, log, false))
		ls = append(ls, tls.NewListener(limited, tlsConfig))
	}
	for _, a := range cfg.MSA.HTTPPlain {
		ls = append(ls, guard.LimitListener(listen(log, a), guard.Limits(cfg, log, false)))
	}
	return ls
}

// serveHTTP serves api on ls until ctx is done, then lets requests in
// flight finish for up to 30 s (a submission waits for the MTA's fsync).
func serveHTTP(ctx context.Context, log zerolog.Logger, api *http.Server, ls []net.Listener) {
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := api.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error().Err(err).Str("listen", l.Addr().String()).Msg("http api stopped")
			}
		}()
	}
	<-ctx.Done()
	shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	api.Shutdown(shutdown)
	wg.Wait()
}
