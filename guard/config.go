package guard

import (
	"net/netip"

	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"

	"postline/config"
)

// Configure applies cfg's [limits] and timeouts to an SMTP or LMTP server.
func Configure(srv *smtp.Server, cfg *config.Config) {
	srv.MaxRecipients = cfg.Limits.MaxRecipients
	srv.MaxLineLength = cfg.Limits.MaxCommandLine // commands only: see third_party/go-smtp/POSTLINE.md
	srv.MaxErrors = cfg.Limits.MaxErrors
	srv.MaxCommands = cfg.Limits.MaxCommands
	srv.ReadTimeout = cfg.SMTPTimeout.D()
	srv.WriteTimeout = cfg.SMTPTimeout.D()
}

// Policy returns the data rules of cfg.
func Policy(cfg *config.Config) DataPolicy {
	return DataPolicy{
		RejectBareNewline: cfg.Limits.BareNewline == "reject",
		MaxLineLength:     cfg.Limits.MaxLineLength,
		MaxHeaderSize:     cfg.Limits.MaxHeaderSize,
		IdleTimeout:       cfg.SMTPTimeout.D(),
		MaxReceived:       cfg.MTA.HopLimit,
	}
}

// PolicyAfterHop is Policy for a hop behind one of postline's own that
// has added its Received field (the MTA's trusted socket, behind the MSA;
// the MDA, behind the MTA): one more Received field is allowed there, so
// a message within mta.hop_limit where it entered is not refused inside.
func PolicyAfterHop(cfg *config.Config) DataPolicy {
	p := Policy(cfg)
	if p.MaxReceived > 0 {
		p.MaxReceived++
	}
	return p
}

// Limits returns the connection limits of cfg for one listener; greeting
// is false where the client expects TLS first (implicit TLS).
func Limits(cfg *config.Config, log zerolog.Logger, greeting bool) ConnLimits {
	return ConnLimits{
		Max: cfg.Limits.MaxConnections, PerIP: cfg.Limits.MaxConnectionsPerIP,
		Trusted: inNets(cfg.TrustedNets()), Greeting: greeting, Log: log,
	}
}

// inNets tests addresses against nets, parsed once here at start-up
// rather than at every accepted connection.
func inNets(nets []netip.Prefix) func(netip.Addr) bool {
	return func(ip netip.Addr) bool {
		ip = ip.Unmap()
		for _, n := range nets {
			if n.Contains(ip) {
				return true
			}
		}
		return false
	}
}
