package config

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"postline/address"
)

// NextHop is where mail for a domain goes instead of its MX hosts, in
// Postfix's relayhost syntax: "[host]:port" (brackets: the host's own
// addresses, no MX lookup), "host:port" or "host" (its MX hosts first).
type NextHop struct {
	Host     string // no brackets; a name or an IP address
	Port     int
	NoMX     bool
	Implicit bool         // implicit TLS (port 465, or relayhost_tls)
	Auth     *Credentials // nil: no AUTH, and TLS only if offered
}

// Route sends the mail of some domains to a next hop of their own.
type Route struct {
	Domains []string `toml:"domains"`
	NextHop string   `toml:"next_hop"`
}

// Credentials are what the MTA authenticates with at the relayhost.
type Credentials struct{ User, Password string }

// ParseNextHop reads a next hop; port defaults to 25.
func ParseNextHop(s string) (NextHop, error) {
	h := NextHop{Port: 25}
	host, port := s, ""
	if i := strings.LastIndexByte(s, ':'); i > strings.LastIndexByte(s, ']') {
		host, port = s[:i], s[i+1:]
	}
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host, h.NoMX = host[1:len(host)-1], true
	}
	if port != "" {
		p, err := strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 {
			return h, fmt.Errorf("%q: the port is not a number from 1 to 65535", s)
		}
		h.Port = p
	}
	if net.ParseIP(host) == nil {
		d, err := address.NormalizeDomain(host)
		if err != nil || host == "" {
			return h, fmt.Errorf("%q is not [host]:port or host:port, e.g. \"[smtp.provider.example]:587\"", s)
		}
		host = d
	}
	h.Host, h.Implicit = host, h.Port == 465
	return h, nil
}

// NextHop returns where mail for domain goes when not to its MX hosts:
// its route, else the relayhost; ok is false for neither (or a local
// domain, whose mail goes to the MDA).
func (c *Config) NextHop(domain string) (NextHop, bool) {
	if c.IsLocalDomain(domain) {
		return NextHop{}, false
	}
	d, _ := address.NormalizeDomain(domain)
	for _, r := range c.MTA.Routes {
		for _, rd := range r.Domains {
			if n, _ := address.NormalizeDomain(rd); n == d {
				h, _ := ParseNextHop(r.NextHop) // validated at Load
				return h, true
			}
		}
	}
	if c.MTA.Relayhost == "" {
		return NextHop{}, false
	}
	h, _ := ParseNextHop(c.MTA.Relayhost)
	switch c.MTA.RelayhostTLS {
	case "implicit":
		h.Implicit = true
	case "starttls":
		h.Implicit = false
	}
	h.Auth = c.MTA.relayAuth
	return h, true
}

// TLSRootPool is the system's roots plus those of mta.tls_roots.
func (c *Config) TLSRootPool() (*x509.CertPool, error) { return rootPool(c.MTA.TLSRoots) }

// rootPool is the system's roots plus those in the PEM file extra ("":
// none).
func rootPool(extra string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if extra == "" {
		return pool, nil
	}
	pem, err := os.ReadFile(extra)
	if err != nil {
		return nil, err
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("no PEM certificate in it")
	}
	return pool, nil
}

// ACMERootPool is the system's roots plus those of acme.ca_roots.
func (c *Config) ACMERootPool() (*x509.CertPool, error) { return rootPool(c.ACME.CARoots) }

// validateRelay checks the smarthost keys and reads relayhost_auth.
func (c *Config) validateRelay(bad func(key, format string, args ...any)) {
	m := &c.MTA
	if m.Relayhost != "" {
		if _, err := ParseNextHop(m.Relayhost); err != nil {
			bad("mta.relayhost", "%v", err)
		}
	}
	if m.RelayhostTLS != "" && m.RelayhostTLS != "starttls" && m.RelayhostTLS != "implicit" {
		bad("mta.relayhost_tls", "%q: give \"starttls\" or \"implicit\" (or leave it out: implicit on port 465)", m.RelayhostTLS)
	}
	if m.RelayhostAuth != "" {
		if m.Relayhost == "" {
			bad("mta.relayhost_auth", "set mta.relayhost too: the credentials are for it")
		}
		creds, err := readCredentials(m.RelayhostAuth)
		if err != nil {
			bad("mta.relayhost_auth", "%v", err)
		}
		m.relayAuth = creds
	}
	if m.TLSRoots != "" {
		if _, err := c.TLSRootPool(); err != nil {
			bad("mta.tls_roots", "%s: %v (give a PEM file of CA certificates)", m.TLSRoots, err)
		}
	}
	for i, r := range m.Routes {
		if _, err := ParseNextHop(r.NextHop); err != nil {
			bad("mta.route.next_hop", "route %d: %v", i+1, err)
		}
		if len(r.Domains) == 0 {
			bad("mta.route.domains", "route %d: list the domains it takes, e.g. domains = [\"example.net\"]", i+1)
		}
		for _, d := range r.Domains {
			if _, err := address.NormalizeDomain(d); err != nil || c.IsLocalDomain(d) {
				bad("mta.route.domains", "route %d: %q is not a domain of another host", i+1, d)
			}
		}
	}
}

// readCredentials reads "user password" from a file only its owner may
// read (it holds a password).
func readCredentials(path string) (*Credentials, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s has mode %04o; make it 0600 (chmod 600 %s): it holds a password", path, st.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		return nil, fmt.Errorf("%s: give one line \"user password\"", path)
	}
	user, password, ok := strings.Cut(lines[0], " ")
	if password = strings.TrimSpace(password); !ok || user == "" || password == "" {
		return nil, fmt.Errorf("%s: give one line \"user password\"", path)
	}
	return &Credentials{User: user, Password: password}, nil
}
