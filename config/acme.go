package config

import (
	"net"
	"net/url"
	"path/filepath"
	"time"
)

// LetsEncrypt is Let's Encrypt's production directory, acme.directory's
// default.
const LetsEncrypt = "https://acme-v02.api.letsencrypt.org/directory"

// ACME gets and renews the listeners' certificate from a CA (RFC 8555).
// It is on when Email is set.
type ACME struct {
	Email       string   `toml:"email"`
	Directory   string   `toml:"directory"`
	Challenge   string   `toml:"challenge"`   // "http-01" or "tls-alpn-01"
	HTTPListen  string   `toml:"http_listen"` // answers /.well-known/acme-challenge/ only
	TLSListen   string   `toml:"tls_listen"`
	CARoots     string   `toml:"ca_roots"` // PEM: extra roots to trust the directory with
	RenewBefore Duration `toml:"renew_before"`
}

// On reports whether certificates come from ACME.
func (a ACME) On() bool { return a.Email != "" }

// ACMEDir holds the account key and the issued certificate.
func (c *Config) ACMEDir() string { return filepath.Join(c.StateDir, "acme") }

func (c *Config) validateACME(bad func(key, format string, args ...any)) {
	a := c.ACME
	if !a.On() {
		return
	}
	if c.TLS.Cert != "" {
		bad("acme.email", "tls.cert is set too: remove [tls] cert and key to have the certificate from ACME, or remove [acme]")
	}
	if u, err := url.Parse(a.Directory); err != nil || u.Scheme != "https" || u.Host == "" {
		bad("acme.directory", "%q is not an https URL, e.g. %q", a.Directory, LetsEncrypt)
	}
	if a.Challenge != "http-01" && a.Challenge != "tls-alpn-01" {
		bad("acme.challenge", "%q: give \"http-01\" or \"tls-alpn-01\"", a.Challenge)
	}
	for key, addr := range map[string]string{"acme.http_listen": a.HTTPListen, "acme.tls_listen": a.TLSListen} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad(key, "%q is not host:port (e.g. \":80\")", addr)
		}
	}
	if a.RenewBefore.D() < time.Minute {
		bad("acme.renew_before", "%v is too short; the default renews 30 days before expiry (\"30d\")", a.RenewBefore.D())
	}
	if a.CARoots != "" {
		if _, err := rootPool(a.CARoots); err != nil {
			bad("acme.ca_roots", "%s: %v (give a PEM file of CA certificates)", a.CARoots, err)
		}
	}
}
