package config

import (
	"net"
	"net/netip"
)

// validateHTTPPlain refuses a plaintext HTTP API listener that is not on
// loopback: tokens and messages would cross the network in clear.
// Anything else must be HTTPS (msa.http).
func (c *Config) validateHTTPPlain(bad func(key, format string, args ...any)) {
	for _, a := range c.MSA.HTTPPlain {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			bad("msa.http_plain", "%q is not host:port (e.g. \"127.0.0.1:8025\")", a)
			continue
		}
		if ip, err := netip.ParseAddr(host); err != nil || !ip.IsLoopback() {
			bad("msa.http_plain", "%q is not a loopback address: API tokens would cross the network in clear; "+
				"move it to msa.http (HTTPS with tls.cert) or listen on 127.0.0.1 or [::1]", a)
		}
	}
}
