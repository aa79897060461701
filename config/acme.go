package config

import (
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"time"

	"postline/address"
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
	if _, err := address.Parse(a.Email); err != nil {
		bad("acme.email", "%q is not an address; give the one the CA writes to about the certificate, e.g. \"postmaster@example.org\"", a.Email)
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

// MTASTS is the MTA-STS policy postline serves for its domains (RFC 8461
// §3.2), at https://mta-sts.DOMAIN/.well-known/mta-sts.txt; on when
// Mode is set.
type MTASTS struct {
	Mode   string   `toml:"mode"`    // "enforce" or "testing"
	MaxAge Duration `toml:"max_age"` // how long senders cache the policy
	Listen string   `toml:"listen"`  // "": acme.tls_listen
}

// On reports whether the policy is served.
func (m MTASTS) On() bool { return m.Mode != "" }

// MTASTSListen is where the policy is served.
func (c *Config) MTASTSListen() string {
	if c.MTASTS.Listen != "" {
		return c.MTASTS.Listen
	}
	return c.ACME.TLSListen
}

// MTASTSPolicy is the policy text: this host is the one MX (RFC 8461
// §3.2, lines ending in CRLF).
func (c *Config) MTASTSPolicy() string {
	return "version: STSv1\r\nmode: " + c.MTASTS.Mode + "\r\nmx: " + c.Hostname +
		"\r\nmax_age: " + strconv.Itoa(int(c.MTASTS.MaxAge.D().Seconds())) + "\r\n"
}

// CertNames are the names the listeners' certificate must hold: the
// hostname, and mta-sts.DOMAIN of each domain when the policy is served.
func (c *Config) CertNames() []string {
	names := []string{c.Hostname}
	if c.MTASTS.On() {
		for _, d := range c.localDomains() {
			names = append(names, "mta-sts."+d)
		}
	}
	return names
}

func (c *Config) validateMTASTS(bad func(key, format string, args ...any)) {
	m := c.MTASTS
	if !m.On() {
		return
	}
	if m.Mode != "enforce" && m.Mode != "testing" {
		bad("mta_sts.mode", "%q: give \"enforce\" or \"testing\"", m.Mode)
	}
	// RFC 8461 §3.2: at most 31557600 s (a year); a day at least is sane.
	if d := m.MaxAge.D(); d < 24*time.Hour || d > 365*24*time.Hour {
		bad("mta_sts.max_age", "%v: give a duration from \"1d\" to \"365d\" (a week is usual: \"7d\")", d)
	}
	if _, _, err := net.SplitHostPort(c.MTASTSListen()); err != nil {
		bad("mta_sts.listen", "%q is not host:port (e.g. \":443\")", c.MTASTSListen())
	}
}
