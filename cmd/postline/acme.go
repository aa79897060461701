package main

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"os"
	"os/user"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"postline/certs"
	"postline/config"
)

// startACME runs the certificate issuer and the listener of its
// challenge when [acme] is on; a new certificate reaches the daemons by
// their reload path. The listener answers only ACME validations.
func startACME(ctx context.Context, cfg *config.Config, log zerolog.Logger, onNew func()) *certs.Issuer {
	if !cfg.ACME.On() {
		return nil
	}
	log = log.With().Str("acme", cfg.ACME.Directory).Logger()
	iss := certs.NewIssuer(cfg, log)
	iss.Group = msaGroup(cfg)
	iss.OnNew = onNew
	if sharesALPN(cfg) && cfg.MTASTS.On() {
		return iss // the MTA-STS listener answers the CA: see startMTASTS
	}
	if err := serveChallenges(ctx, cfg, iss.Challenges, log); err != nil {
		log.Error().Err(err).Msg("no ACME challenge listener: certificates cannot be issued")
		return nil
	}
	return iss
}

// msaGroup is the group of the MSA's user, who reads the certificate
// after dropping root (the MTA's user must be in it too, as postline
// setup makes one user for both) and runs the dkim-sign plugin that
// reads the DKIM keys; -1 when there is none or this is not root.
func msaGroup(cfg *config.Config) int {
	if os.Geteuid() != 0 || cfg.MSA.User == "" {
		return -1
	}
	u, err := user.Lookup(cfg.MSA.User)
	if err != nil {
		return -1
	}
	gid, _ := strconv.Atoi(u.Gid)
	return gid
}

// serveChallenges listens for the configured challenge until ctx ends.
func serveChallenges(ctx context.Context, cfg *config.Config, ch *certs.Challenges, log zerolog.Logger) error {
	if cfg.ACME.Challenge == "tls-alpn-01" {
		l, err := tls.Listen("tcp", cfg.ACME.TLSListen, ch.TLSConfig())
		if err != nil {
			return err
		}
		context.AfterFunc(ctx, func() { l.Close() })
		go answerALPN(l)
		return nil
	}
	l, err := net.Listen("tcp", cfg.ACME.HTTPListen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: ch, ReadHeaderTimeout: 10 * time.Second, ErrorLog: nil}
	context.AfterFunc(ctx, func() { srv.Close() })
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("ACME challenge listener stopped")
		}
	}()
	return nil
}

// answerALPN completes each handshake (the CA checks the certificate it
// gets) and closes the connection.
func answerALPN(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			c.(*tls.Conn).Handshake()
		}()
	}
}
