// Command postline-mta is the transfer daemon: SMTP on mta.listen for
// mail from the internet, a trusted SMTP socket for the MSA, the queue,
// and delivery to the MDA. `postline start` runs it; it can also run
// alone with -c FILE.
package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"postline/certs"
	"postline/config"
	"postline/daemon"
	"postline/durable"
	"postline/guard"
	"postline/lmtp"
	"postline/mta"
	"postline/mtasts"
	"postline/outcomes"
	"postline/plugins/host"
	"postline/queue"
	"postline/reply"
	"postline/srs"
	"postline/tlsrpt"
	"postline/users"
)

func main() {
	cfg, log := daemon.Start("mta")
	defer daemon.Profile("mta")()
	own, err := daemon.Prepare(cfg, "mta")
	if err != nil {
		daemon.Fatal(log, "cannot prepare state_dir", err)
	}
	db, aliases := daemon.OpenUsers(cfg, log)
	tlsConfig, cert, err := certs.ServerConfig(cfg)
	if err != nil {
		daemon.Fatal(log, "cannot set up TLS", err)
	}
	ls := listenAll(cfg, own, log)
	// Port 25, the socket and the TLS key are ours: drop root before the
	// queue is opened, so that every spool file belongs to the mta user.
	if err := daemon.DropPrivileges(log, cfg.MTA.User); err != nil {
		daemon.Fatal(log, "cannot drop privileges", err)
	}
	reg := prometheus.NewRegistry()
	spool, manager, reporter := startQueue(cfg, log, reg)
	manager.SRS = newSRS(cfg, log)

	srv := newServers(cfg, log, db, aliases, spool, manager)
	srv.public.TLSConfig = tlsConfig
	admin := &mta.AdminServer{Manager: manager, Log: log}
	manager.Outcomes = openOutcomes(cfg, log)
	manager.Events = openEvents(cfg, log)
	status := &mta.StatusServer{Manager: manager, Outcomes: manager.Outcomes, Log: log}

	ctx, stop := daemon.SignalContext()
	defer stop()
	flushFailure := &daemon.FlushFailure{Log: log, Stop: stop}
	defer flushFailure.ExitIfFailed() // after the plugins' and listeners' ends below
	spool.OnFlushFailure(flushFailure.Report)
	chain := startPlugins(ctx, cfg, log, cert)
	defer chain.Close()
	srv.publicBackend.Plugins = chain
	var wg sync.WaitGroup
	run := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
	if reporter != nil {
		run(func() { reporter.Run(ctx) })
	}
	run(func() { manager.Run(ctx) })
	run(func() { daemon.ServeMetrics(ctx, log, cfg.MTA.Metrics, reg) })
	run(func() { admin.Serve(ctx, ls.admin) })
	run(func() { status.Serve(ctx, ls.status) })
	run(func() { manager.Events.Run(ctx) })
	run(func() { daemon.Serve(ctx, log, srv.trusted, []net.Listener{ls.trusted}, 30*time.Second) })
	run(func() { daemon.Serve(ctx, log, srv.fromMDA, []net.Listener{ls.mda}, 30*time.Second) })
	run(func() { daemon.Serve(ctx, log, srv.public, ls.public, 30*time.Second) })
	log.Info().Strs("listen", cfg.MTA.Listen).Str("socket", cfg.MTASocket()).
		Str("admin_socket", cfg.MTAAdminSocket()).Msg("mta ready")
	if err := daemon.NotifyReady(); err != nil {
		log.Warn().Err(err).Msg("cannot notify supervisor")
	}
	wg.Wait()
	log.Info().Msg("mta stopped")
}

// startPlugins starts the MTA's plugins, after dropping root: they run
// as the mta user. By default that is the bundled received plugin (RFC
// 5321 §4.4), for mail from the internet only: the trusted socket's mail
// got its field at the MSA. A reload (SIGHUP) restarts them.
func startPlugins(ctx context.Context, cfg *config.Config, log zerolog.Logger, cert *certs.Certificate) *host.Chain {
	chain, err := daemon.StartPlugins(ctx, cfg, "mta", log)
	if err != nil {
		daemon.Fatal(log, "cannot start plugins", err)
	}
	reloader := &daemon.Reloader{Config: cfg, Svc: "mta", Log: log, Cert: cert, Plugins: chain}
	go reloader.Run(ctx)
	return chain
}

// listeners are the MTA's: the public SMTP ports and its unix sockets.
type listeners struct {
	trusted, mda, status, admin net.Listener
	public                      []net.Listener
}

// listenAll opens the MSA's trusted socket, the MDA's, the status and
// admin sockets and the public SMTP listeners, while the MTA may still be root.
func listenAll(cfg *config.Config, own *daemon.Owners, log zerolog.Logger) listeners {
	var ls listeners
	var err error
	for _, sock := range []struct {
		l         *net.Listener
		svc, path string
	}{
		{&ls.trusted, "mta", cfg.MTASocket()},
		{&ls.mda, "mta-mda", cfg.MTALocalSocket()},
		{&ls.status, "mta", cfg.MTAStatusSocket()}, // the MSA's, like mta.sock
	} {
		if *sock.l, err = own.ListenSocket(sock.svc, sock.path); err != nil {
			daemon.Fatal(log, "cannot listen on "+sock.path, err)
		}
	}
	if ls.admin, err = listenAdmin(cfg, own); err != nil {
		daemon.Fatal(log, "cannot listen on admin socket", err)
	}
	ls.public = listenTCP(cfg, log, cfg.MTA.Listen)
	return ls
}

// logRecovered logs what the spool's recovery dropped or set aside.
func logRecovered(log zerolog.Logger, spool *queue.Spool) {
	dropped, damaged := spool.Recovered()
	for _, id := range dropped {
		log.Warn().Str("queue_id", id).Msg("dropped a message whose store a crash cut short (never acknowledged)")
	}
	for _, id := range damaged {
		log.Error().Str("queue_id", id).Str("folder", spool.DamagedDir()).
			Msg("envelope does not decode: set aside with its data; inspect it, then requeue or delete it")
	}
}

// servers are the MTA's SMTP servers.
type servers struct {
	public, trusted, fromMDA *smtp.Server
	publicBackend            *mta.Backend
}

// newServers builds the public SMTP server (mail from the internet), the
// trusted one on the MSA's socket, which takes the MSA's queue ID and any
// destination, and the one on the MDA's socket, which takes its replies
// and redirects only (mta.Backend.FromMDA).
func newServers(cfg *config.Config, log zerolog.Logger, db *users.DB, aliases *users.Aliases, spool *queue.Spool,
	manager *mta.Manager) servers {
	backend := func(policy guard.DataPolicy) *mta.Backend {
		return &mta.Backend{Config: cfg, Users: db, Aliases: aliases, Queue: spool, SpillDir: spool.TempDir(), Manager: manager,
			Log: log, Policy: policy, Metrics: manager.Metrics, SRS: manager.SRS}
	}
	srv := servers{publicBackend: backend(guard.Policy(cfg))}
	srv.publicBackend.ReverseDNS = daemon.ReverseDNS(cfg.MTA.DNSServer, time.Second)
	srv.public = newServer(cfg, log, srv.publicBackend)
	trusted, fromMDA := backend(guard.PolicyAfterHop(cfg)), backend(guard.PolicyAfterHop(cfg))
	trusted.Trusted, fromMDA.Trusted, fromMDA.FromMDA = true, true, true
	srv.trusted, srv.fromMDA = newServer(cfg, log, trusted), newServer(cfg, log, fromMDA)
	// The queue ID the MSA allocated, a filter's folder, the MSA's question.
	srv.trusted.MailParams = []string{queue.IDParam, queue.FolderParam, queue.QueuedParam, queue.RequireTLSParam}
	srv.trusted.AllowInsecureAuth = true // a unix socket guarded by file permissions
	srv.fromMDA.MailParams = []string{queue.ForwardParam}
	srv.fromMDA.MaxRecipients = 100 // Sieve's redirects of one message, at most
	for _, s := range []*smtp.Server{srv.trusted, srv.fromMDA} {
		s.MaxMessageBytes = cfg.MaxMessageSize + 64<<10 // room for the headers added on the way
	}
	return srv
}

// startQueue opens and recovers the spool and returns the manager that
// delivers its messages, to the MDA and to other hosts, and the sender
// of TLS reports (nil when mta.tls_report_period is 0).
func startQueue(cfg *config.Config, log zerolog.Logger, reg *prometheus.Registry) (*queue.Spool, *mta.Manager, *mta.TLSReporter) {
	// Concurrent messages share the fsyncs of the spool's folders and
	// its flushes, made on one folder kept open (durable.Syncfs); the
	// queue folder is daemon.Prepare's.
	whole, err := durable.OpenSyncfs(cfg.QueueDir())
	if err != nil {
		daemon.Fatal(log, "cannot open queue", err)
	}
	spool, err := queue.Open(cfg.QueueDir(), &durable.Batched{FS: durable.OS{}, Whole: whole})
	if err != nil {
		daemon.Fatal(log, "cannot open queue", err)
	}
	envs, err := spool.Recover()
	if err != nil {
		daemon.Fatal(log, "cannot recover queue", err)
	}
	logRecovered(log, spool)
	// LMTP sessions to the MDA kept between deliveries, one per worker,
	// each for less than the MDA's idle timeout.
	mdaSessions := &lmtp.Pool{Socket: cfg.MDASocket(), LHLO: cfg.Hostname,
		IdleTimeout: min(30*time.Second, cfg.SMTPTimeout.D()/2)}
	manager := mta.NewManager(cfg, spool, mdaSessions.Deliver, log)
	mdaSessions.MaxIdle = manager.Workers
	manager.Metrics = mta.NewMetrics(reg, func() float64 { return float64(manager.Len()) })
	reporter := startRelay(cfg, log, manager)
	for _, env := range envs {
		manager.Add(env)
	}
	log.Info().Int("messages", len(envs)).Msg("queue recovered")
	// Reading a large queue back took memory that its envelopes no
	// longer need: give it back now, not minutes later.
	debug.FreeOSMemory()
	return spool, manager, reporter
}

// startRelay gives manager its relay to other domains (with their DANE
// and MTA-STS policies) and returns the sender of TLS reports (nil when
// mta.tls_report_period is 0).
func startRelay(cfg *config.Config, log zerolog.Logger, manager *mta.Manager) *mta.TLSReporter {
	roots, err := cfg.TLSRootPool()
	if err != nil {
		daemon.Fatal(log, "cannot read mta.tls_roots", err)
	}
	resolver := &mta.Resolver{Server: cfg.MTA.DNSServer, DNSSECResolver: cfg.MTA.DNSSECResolver}
	relayer := &mta.Relayer{Config: cfg, Log: log, Self: mta.SelfAddrs(cfg), Resolver: resolver,
		Dialer: &mta.Dialer{Hostname: cfg.Hostname, RootCAs: roots},
		STS: &mtasts.Cache{Dir: filepath.Join(daemon.MTAStateDir(cfg), "mta-sts"), Log: log,
			Fetcher: &mtasts.Fetcher{Resolver: resolver, Roots: roots, Port: cfg.MTA.MTASTSPort}}}
	manager.Relay = relayer.Relay
	period := cfg.MTA.TLSReportPeriod.D()
	if period == 0 {
		return nil
	}
	relayer.Reports = &tlsrpt.Store{Path: filepath.Join(daemon.MTAStateDir(cfg), "tls-sessions.jsonl")}
	return &mta.TLSReporter{Store: relayer.Reports, Resolver: resolver, Manager: manager, Period: period, Log: log}
}

// newSRS returns the rewriter of forwarded mail's senders, with its
// secret in state_dir/mta/ (made there the first time, as the mta
// user); nil when mta.srs is off.
func newSRS(cfg *config.Config, log zerolog.Logger) *srs.Rewriter {
	if !cfg.MTA.SRS {
		return nil
	}
	secret, err := srs.LoadSecret(filepath.Join(daemon.MTAStateDir(cfg), "srs.secret"))
	if err != nil {
		daemon.Fatal(log, "cannot set up SRS", err)
	}
	return &srs.Rewriter{Domain: cfg.SRSDomain(), Secret: secret}
}

// listenAdmin makes the socket of `postline queue`: mode 0600 and, like
// mta.sock, owned by the mta user when started as root with one, so
// that only root and that user can connect; unlike mta.sock it is never
// open to the MSA's group.
func listenAdmin(cfg *config.Config, own *daemon.Owners) (net.Listener, error) {
	l, err := daemon.ListenUnix(cfg.MTAAdminSocket(), 0o600)
	if err != nil || own.Self.UID != 0 || own.MTA.UID == 0 {
		return l, err
	}
	if err := os.Chown(cfg.MTAAdminSocket(), own.MTA.UID, own.MTA.GID); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func newServer(cfg *config.Config, log zerolog.Logger, be smtp.Backend) *smtp.Server {
	s := smtp.NewServer(be)
	s.Domain = cfg.Hostname
	s.Replies = reply.Server()
	s.MaxMessageBytes = cfg.MaxMessageSize
	guard.Configure(s, cfg)
	s.EnableSMTPUTF8 = true
	s.EnableDSN = true        // RFC 3461: the dsn package honours it
	s.EnableREQUIRETLS = true // RFC 8689: offered after STARTTLS only
	// A large message is read 16 KiB per call instead of 4 (bufio's
	// default); 2,000 idle connections cost 24 MB more for it.
	s.ReadBufferSize = 16 << 10
	s.ErrorLog = daemon.StdLogger(log)
	return s
}

func listenTCP(cfg *config.Config, log zerolog.Logger, addrs []string) []net.Listener {
	var ls []net.Listener
	for _, a := range addrs {
		l, err := daemon.ListenTCP(a)
		if err != nil {
			daemon.Fatal(log, "cannot listen", err)
		}
		ls = append(ls, guard.LimitListener(l, guard.Limits(cfg, log, true)))
	}
	return ls
}

// openEvents returns the poster of the HTTP API's delivery events to the
// users' webhooks (the file `postline token webhook` writes).
func openEvents(cfg *config.Config, log zerolog.Logger) *mta.Events {
	hooks, err := users.OpenWebhooks(cfg.WebhooksFile())
	if err != nil {
		daemon.Fatal(log, "cannot read the webhooks file", err)
	}
	return mta.NewEvents(hooks, log)
}

// openOutcomes returns the record of submitted messages' final states
// (the HTTP API's GET after a message left the queue), in
// state_dir/mta/outcomes/, made as the mta user.
func openOutcomes(cfg *config.Config, log zerolog.Logger) *outcomes.Store {
	dir := filepath.Join(daemon.MTAStateDir(cfg), "outcomes")
	if err := durable.MkdirAll(durable.OS{}, dir, 0o700); err != nil {
		daemon.Fatal(log, "cannot make the outcomes folder", err)
	}
	return &outcomes.Store{Dir: dir, Retention: outcomes.DefaultRetention}
}
