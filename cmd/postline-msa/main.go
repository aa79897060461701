// Command postline-msa is the submission daemon: SMTP with STARTTLS on
// msa.submission and implicit TLS on msa.submissions (RFC 8314), AUTH
// required, handing each message to the MTA's trusted socket.
// `postline start` runs it; it can also run alone with -c FILE.
package main

import (
	"crypto/tls"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"postline/certs"
	"postline/config"
	"postline/daemon"
	"postline/guard"
	"postline/msa"
	"postline/reply"
	"postline/users"
)

func main() {
	cfg, log := daemon.Start("msa")
	if _, err := daemon.Prepare(cfg, "msa"); err != nil {
		daemon.Fatal(log, "cannot prepare state_dir", err)
	}
	db, aliases := daemon.OpenUsers(cfg, log)
	tlsConfig, cert, err := certs.ServerConfig(cfg)
	if err != nil {
		daemon.Fatal(log, "cannot set up TLS", err)
	}
	be := msa.NewBackend(cfg, db, log, dialMTA(cfg))
	be.Aliases = aliases
	reg := prometheus.NewRegistry()
	be.Metrics = msa.NewMetrics(reg)

	tokens, err := users.OpenTokens(cfg.MSA.TokensFile)
	if err != nil {
		daemon.Fatal(log, "cannot read API tokens", err)
	}
	api := newHTTPServer(cfg, log, be, tokens, tlsConfig)
	httpListeners := listenHTTP(cfg, log, tlsConfig)

	starttls := newServer(cfg, log, be, tlsConfig)
	implicit := newServer(cfg, log, be, tlsConfig)
	plainListeners, tlsListeners := listenSubmission(cfg, log, tlsConfig)
	// Ports bound and TLS key loaded: nothing left needs root.
	if err := daemon.DropPrivileges(log, cfg.MSA.User); err != nil {
		daemon.Fatal(log, "cannot drop privileges", err)
	}

	ctx, stop := daemon.SignalContext()
	defer stop()
	// After dropping root: the plugins run as the msa user. By default
	// that is the bundled received plugin (RFC 5321 §4.4).
	chain, err := daemon.StartPlugins(ctx, cfg, "msa", log)
	if err != nil {
		daemon.Fatal(log, "cannot start plugins", err)
	}
	defer chain.Close()
	be.Plugins = chain
	reloader := &daemon.Reloader{Config: cfg, Svc: "msa", Log: log, Cert: cert, Plugins: chain}
	go reloader.Run(ctx)
	be.SpillDir = daemon.MSASpoolDir(cfg)
	be.ReverseDNS = daemon.ReverseDNS(cfg.MTA.DNSServer, time.Second)
	var wg sync.WaitGroup
	wg.Add(4)
	go func() { defer wg.Done(); daemon.ServeMetrics(ctx, log, cfg.MSA.Metrics, reg) }()
	go func() { defer wg.Done(); daemon.Serve(ctx, log, starttls, plainListeners, 30*time.Second) }()
	go func() { defer wg.Done(); daemon.Serve(ctx, log, implicit, tlsListeners, 30*time.Second) }()
	go func() { defer wg.Done(); serveHTTP(ctx, log, api, httpListeners) }()
	log.Info().Strs("submission", cfg.MSA.Submission).Strs("submissions", cfg.MSA.Submissions).
		Strs("http", cfg.MSA.HTTP).Strs("http_plain", cfg.MSA.HTTPPlain).Msg("msa ready")
	if err := daemon.NotifyReady(); err != nil {
		log.Warn().Err(err).Msg("cannot notify supervisor")
	}
	wg.Wait()
	log.Info().Msg("msa stopped")
}

// listenSubmission opens the submission ports (STARTTLS) and the
// submissions ports (implicit TLS, RFC 8314), each with its limits.
func listenSubmission(cfg *config.Config, log zerolog.Logger, tlsConfig *tls.Config) (plain, implicit []net.Listener) {
	for _, a := range cfg.MSA.Submission {
		plain = append(plain, guard.LimitListener(listen(log, a), guard.Limits(cfg, log, true)))
	}
	for _, a := range cfg.MSA.Submissions {
		limited := guard.LimitListener(listen(log, a), guard.Limits(cfg, log, false))
		implicit = append(implicit, tls.NewListener(limited, tlsConfig))
	}
	return plain, implicit
}

func newServer(cfg *config.Config, log zerolog.Logger, be smtp.Backend, tlsConfig *tls.Config) *smtp.Server {
	s := smtp.NewServer(be)
	s.Domain = cfg.Hostname
	s.Replies = reply.Server()
	s.TLSConfig = tlsConfig
	// AUTH before TLS is refused by the session itself, with 530 5.7.0
	// as Postfix does, rather than go-smtp's 523.
	s.AllowInsecureAuth = true
	s.MaxMessageBytes = cfg.MaxMessageSize
	guard.Configure(s, cfg)
	s.EnableSMTPUTF8 = true
	s.EnableDSN = true        // RFC 3461: the dsn package honours it
	s.EnableREQUIRETLS = true // RFC 8689: offered after STARTTLS only
	s.ErrorLog = daemon.StdLogger(log)
	return s
}

func listen(log zerolog.Logger, addr string) net.Listener {
	l, err := daemon.ListenTCP(addr)
	if err != nil {
		daemon.Fatal(log, "cannot listen", err)
	}
	return l
}

// dialMTA connects to the MTA's trusted socket and greets it.
func dialMTA(cfg *config.Config) func() (*smtp.Client, error) {
	return func() (*smtp.Client, error) {
		conn, err := net.DialTimeout("unix", cfg.MTASocket(), 10*time.Second)
		if err != nil {
			return nil, err
		}
		c := smtp.NewClient(conn)
		c.CommandTimeout = cfg.SMTPTimeout.D()
		if err := c.Hello(cfg.Hostname); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
}
