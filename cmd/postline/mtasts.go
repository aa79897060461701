package main

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/acme"

	"postline/certs"
	"postline/config"
)

// policyPath is where senders fetch an MTA-STS policy (RFC 8461 §3.2).
const policyPath = "/.well-known/mta-sts.txt"

// mtaSTSServer serves the MTA-STS policy of each local domain over HTTPS,
// at https://mta-sts.DOMAIN/.well-known/mta-sts.txt, with the listeners'
// certificate (from ACME, which then holds the mta-sts names too).
type mtaSTSServer struct {
	cfg  atomic.Pointer[config.Config]
	cert *certs.Certificate
}

// startMTASTS listens on mta_sts.listen until ctx ends, when the policy
// is on. With ACME's tls-alpn-01 on the same address, this listener
// answers the CA too (ch), as only one can hold the port.
func startMTASTS(ctx context.Context, cfg *config.Config, ch *certs.Challenges, log zerolog.Logger) *mtaSTSServer {
	if !cfg.MTASTS.On() {
		return nil
	}
	tlsCfg, cert, err := certs.ServerConfig(cfg)
	if err == nil && sharesALPN(cfg) && ch != nil {
		withChallenges(tlsCfg, ch.TLSConfig())
	}
	var l net.Listener
	if err == nil {
		l, err = tls.Listen("tcp", cfg.MTASTSListen(), tlsCfg)
	}
	if err != nil {
		log.Error().Err(err).Msg("MTA-STS policy not served")
		return nil
	}
	s := &mtaSTSServer{cert: cert}
	s.cfg.Store(cfg)
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	context.AfterFunc(ctx, func() { srv.Close() })
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("MTA-STS policy listener stopped")
		}
	}()
	log.Info().Str("listen", cfg.MTASTSListen()).Str("mode", cfg.MTASTS.Mode).Msg("serving the MTA-STS policy")
	return s
}

// sharesALPN reports whether ACME's tls-alpn-01 challenge is answered on
// the policy's address.
func sharesALPN(cfg *config.Config) bool {
	return cfg.ACME.On() && cfg.ACME.Challenge == "tls-alpn-01" && cfg.ACME.TLSListen == cfg.MTASTSListen()
}

// withChallenges makes tlsCfg answer acme-tls/1 handshakes as alpn does.
func withChallenges(tlsCfg, alpn *tls.Config) {
	own := tlsCfg.GetCertificate
	tlsCfg.NextProtos = []string{"http/1.1", acme.ALPNProto}
	tlsCfg.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if slices.Contains(hello.SupportedProtos, acme.ALPNProto) {
			return alpn.GetCertificate(hello)
		}
		return own(hello)
	}
}

// ServeHTTP answers the policy of the domain the Host names, and 404 to
// anything else.
func (s *mtaSTSServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cfg := s.cfg.Load()
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	domain, ok := strings.CutPrefix(strings.ToLower(host), "mta-sts.")
	if r.URL.Path != policyPath || !ok || !cfg.IsLocalDomain(domain) || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Write([]byte(cfg.MTASTSPolicy()))
}

// reload takes a changed config and a new certificate.
func (s *mtaSTSServer) reload(cfg *config.Config, log zerolog.Logger) {
	if s == nil {
		return
	}
	s.cfg.Store(cfg)
	if err := s.cert.Reload(cfg); err != nil {
		log.Error().Err(err).Msg("MTA-STS listener keeps its certificate")
	}
}
