package config

import (
	"net/netip"
	"os/user"
)

// validateLimits checks the [limits] table and the daemons' user names.
func (c *Config) validateLimits(bad func(key, format string, args ...any)) {
	l := c.Limits
	positive := map[string]int{
		"limits.max_recipients": l.MaxRecipients, "limits.max_line_length": l.MaxLineLength,
		"limits.max_header_size": l.MaxHeaderSize, "limits.max_commands": l.MaxCommands,
		"limits.max_errors": l.MaxErrors, "limits.max_connections": l.MaxConnections,
		"limits.max_connections_per_ip":  l.MaxConnectionsPerIP,
		"msa.auth_failures_per_ip":       c.MSA.AuthFailuresPerIP,
		"mta.max_deliveries":             c.MTA.MaxDeliveries,
		"mta.max_connections_per_domain": c.MTA.MaxConnectionsPerDomain,
		"msa.auth_failures_per_account":  c.MSA.AuthFailuresPerAcc,
	}
	for key, v := range positive {
		if v < 1 {
			bad(key, "must be at least 1")
		}
	}
	// RFC 5321 §4.5.3.1.4: 512 octets is the minimum a server must accept.
	if l.MaxCommandLine < 512 {
		bad("limits.max_command_line", "must be at least 512 (RFC 5321 §4.5.3.1.4)")
	}
	if l.MaxLineLength < 1000 {
		bad("limits.max_line_length", "must be at least 1000 (RFC 5321 §4.5.3.1.6)")
	}
	if l.BareNewline != "normalize" && l.BareNewline != "reject" {
		bad("limits.bare_newline", "%q: use \"normalize\" or \"reject\"", l.BareNewline)
	}
	for _, n := range l.TrustedNetworks {
		if _, err := netip.ParsePrefix(n); err != nil {
			bad("limits.trusted_networks", "%q is not a network like \"192.0.2.0/24\" or \"2001:db8::/32\"", n)
		}
	}
	for key, name := range map[string]string{"msa.user": c.MSA.User, "mta.user": c.MTA.User, "mda.user": c.MDA.User} {
		if name == "" {
			continue
		}
		if _, err := user.Lookup(name); err != nil {
			bad(key, "no system user %q; create it (useradd --system %s) or remove the key", name, name)
		}
	}
}

// TrustedNets returns limits.trusted_networks, already validated.
func (c *Config) TrustedNets() []netip.Prefix {
	var nets []netip.Prefix
	for _, n := range c.Limits.TrustedNetworks {
		if p, err := netip.ParsePrefix(n); err == nil {
			nets = append(nets, p.Masked())
		}
	}
	return nets
}
