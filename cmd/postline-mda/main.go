// Command postline-mda is the delivery daemon: an LMTP server on
// state_dir/run/mda.sock that writes mail into Maildirs under mail_root.
// `postline start` runs it; it can also run alone with -c FILE.
package main

import (
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/emersion/go-smtp"

	"postline/daemon"
	"postline/durable"
	"postline/mda"
	"postline/users"
)

func main() {
	cfg, log := daemon.Start("mda")
	db, err := users.Open(cfg.UsersFile)
	if err != nil {
		daemon.Fatal(log, "cannot read users", err)
	}
	spoolDir := filepath.Join(cfg.StateDir, "mda")
	for _, d := range []string{spoolDir, cfg.MDA.MailRoot} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			daemon.Fatal(log, "cannot create directory", err)
		}
	}
	be := &mda.Backend{
		Mailboxes: &mda.Mailboxes{Config: cfg, Users: db},
		Maildir:   &mda.Maildir{FS: durable.OS{}, Hostname: cfg.Hostname},
		SpoolDir:  spoolDir,
		Log:       log,
	}
	srv := smtp.NewServer(be)
	srv.LMTP = true
	srv.Domain = cfg.Hostname
	srv.MaxMessageBytes = cfg.MaxMessageSize + 64<<10 // room for trace headers added on the way
	srv.ReadTimeout = cfg.SMTPTimeout.D()
	srv.WriteTimeout = cfg.SMTPTimeout.D()
	srv.EnableDSN = true // carries the queue ID as ENVID, see package lmtp
	srv.EnableSMTPUTF8 = true
	srv.ErrorLog = daemon.StdLogger(log)

	l, err := daemon.ListenUnix(cfg.MDASocket(), 0o600)
	if err != nil {
		daemon.Fatal(log, "cannot listen", err)
	}
	ctx, stop := daemon.SignalContext()
	defer stop()
	log.Info().Str("socket", cfg.MDASocket()).Str("mail_root", cfg.MDA.MailRoot).Msg("mda ready")
	if err := daemon.NotifyReady(); err != nil {
		log.Warn().Err(err).Msg("cannot notify supervisor")
	}
	daemon.Serve(ctx, log, srv, []net.Listener{l}, 30*time.Second)
	log.Info().Msg("mda stopped")
}
