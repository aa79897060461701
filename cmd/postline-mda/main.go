// Command postline-mda is the delivery daemon: an LMTP server on
// state_dir/run/mda.sock that writes mail into Maildirs under mail_root.
// `postline start` runs it; it can also run alone with -c FILE.
package main

import (
	"net"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"postline/config"
	"postline/daemon"
	"postline/durable"
	"postline/guard"
	"postline/mda"
	"postline/users"
)

func main() {
	cfg, log := daemon.Start("mda")
	defer daemon.Profile("mda")()
	// Creates the spool and mail_root, owned by the mda user.
	own, err := daemon.Prepare(cfg, "mda")
	if err != nil {
		daemon.Fatal(log, "cannot prepare state_dir", err)
	}
	be, srv := newServer(cfg, log)
	reg := prometheus.NewRegistry()
	be.Metrics = mda.NewMetrics(reg)

	l, err := own.ListenSocket("mda", cfg.MDASocket())
	if err != nil {
		daemon.Fatal(log, "cannot listen", err)
	}
	// Before the first delivery: every Maildir file belongs to the mda user.
	if err := daemon.DropPrivileges(log, cfg.MDA.User); err != nil {
		daemon.Fatal(log, "cannot drop privileges", err)
	}
	// After dropping root, so its files belong to the mda user too. A
	// message stays queued for at most queue_lifetime, so no redelivery
	// comes later than that.
	ledger, err := mda.OpenLedger(durable.OS{}, be.SpoolDir, cfg.MTA.QueueLifetime.D(), time.Now())
	if err != nil {
		daemon.Fatal(log, "cannot open the delivery ledger", err)
	}
	defer ledger.Close()
	be.Ledger = ledger
	ctx, stop := daemon.SignalContext()
	defer stop()
	flushFailure := &daemon.FlushFailure{Log: log, Stop: stop}
	defer flushFailure.ExitIfFailed() // after the plugins' and listeners' ends below
	be.FlushFailed = flushFailure.Report
	// After dropping root: the plugins run as the mda user. By default
	// that is the bundled return-path plugin (RFC 5321 §4.4).
	chain, err := daemon.StartPlugins(ctx, cfg, "mda", log)
	if err != nil {
		daemon.Fatal(log, "cannot start plugins", err)
	}
	defer chain.Close()
	be.Plugins = chain
	reloader := &daemon.Reloader{Config: cfg, Svc: "mda", Log: log, Plugins: chain}
	go reloader.Run(ctx)
	log.Info().Str("socket", cfg.MDASocket()).Str("mail_root", cfg.MDA.MailRoot).Msg("mda ready")
	if err := daemon.NotifyReady(); err != nil {
		log.Warn().Err(err).Msg("cannot notify supervisor")
	}
	go daemon.ServeMetrics(ctx, log, cfg.MDA.Metrics, reg)
	daemon.Serve(ctx, log, srv, []net.Listener{l}, 30*time.Second)
	log.Info().Msg("mda stopped")
}

// newServer builds the LMTP server and its backend; the ledger and the
// plugins are added once root is dropped.
func newServer(cfg *config.Config, log zerolog.Logger) (*mda.Backend, *smtp.Server) {
	db, err := users.Open(cfg.UsersFile)
	if err != nil {
		daemon.Fatal(log, "cannot read users", err)
	}
	// Flushes of the mail root on one folder kept open (durable.Syncfs).
	whole, err := durable.OpenSyncfs(cfg.MDA.MailRoot)
	if err != nil {
		daemon.Fatal(log, "cannot open mail_root", err)
	}
	be := &mda.Backend{
		Mailboxes: &mda.Mailboxes{Config: cfg, Users: db},
		Maildir:   &mda.Maildir{FS: mda.NewBatchedFS(durable.Rooted{Root: cfg.MDA.MailRoot}, whole), Hostname: cfg.Hostname},
		SpoolDir:  daemon.MDASpoolDir(cfg),
		Quota:     &mda.Quota{Limit: cfg.MDA.Quota},
		Policy:    guard.PolicyAfterHop(cfg), // the MTA's Received field
		Send:      mda.DialMTA(cfg.MTALocalSocket(), cfg.Hostname),
		Log:       log,
	}
	srv := mda.NewServer(be, cfg.Hostname)
	srv.MaxMessageBytes = cfg.MaxMessageSize + 64<<10 // room for trace headers added on the way
	guard.Configure(srv, cfg)
	srv.ErrorLog = daemon.StdLogger(log)
	return be, srv
}
