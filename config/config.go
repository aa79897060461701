// Package config loads postline's one TOML file, strictly: an unknown or
// mistyped key is an error that names the file, the line and the fix.
// Relative paths in the file are relative to the file's own folder.
//
// config never opens sockets or spool files; it only says where they are.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"postline/address"
)

// Config is the whole postline configuration, shared by all daemons.
type Config struct {
	// File is the absolute path of the file the config was read from.
	File string `toml:"-"`

	Hostname    string   `toml:"hostname"`
	StateDir    string   `toml:"state_dir"`
	Domains     []string `toml:"domains"`
	UsersFile   string   `toml:"users_file"`
	AliasesFile string   `toml:"aliases_file"` // see users.Aliases; "" for none
	// RecipientDelimiter separates a user from an extension in a local
	// part ("bob+lists"), as Postfix's recipient_delimiter; "" for none.
	RecipientDelimiter string   `toml:"recipient_delimiter"`
	MaxMessageSize     int64    `toml:"max_message_size"`
	SMTPTimeout        Duration `toml:"smtp_timeout"`
	LogLevel           string   `toml:"log_level"`

	MSA    MSA    `toml:"msa"`
	MTA    MTA    `toml:"mta"`
	MDA    MDA    `toml:"mda"`
	TLS    TLS    `toml:"tls"`
	ACME   ACME   `toml:"acme"`
	MTASTS MTASTS `toml:"mta_sts"`
	Limits Limits `toml:"limits"`

	// Plugins are the filter plugins of every daemon: DefaultPlugins
	// merged with the file's [[plugins]] tables (see mergePlugins).
	Plugins []Plugin `toml:"plugins"`

	live *live // see Reload
}

// MSA configures the submission daemon.
type MSA struct {
	Submission  []string `toml:"submission"`
	Submissions []string `toml:"submissions"`
	// HTTP are the HTTPS listeners of the submission API (docs/http-api.md),
	// with the certificate of every TLS listener; HTTPPlain are plaintext
	// ones, allowed on loopback addresses only (a local application, or a
	// reverse proxy on the same host that terminates TLS).
	HTTP      []string `toml:"http"`
	HTTPPlain []string `toml:"http_plain"`
	// TokensFile holds the API tokens' hashes ("": "tokens" beside users_file).
	TokensFile string `toml:"tokens_file"`
	// Metrics is where Prometheus scrapes the MSA's counters ("" off).
	Metrics string `toml:"metrics"`
	User    string `toml:"user"`
	// CheckHeaderFrom also requires the From: header's addresses to be
	// the authenticated user's.
	CheckHeaderFrom bool `toml:"check_header_from"`
	// Password guessing: each failure delays the 535 reply by one more
	// second up to AuthMaxDelay; this many failures from one IP or for
	// one account within AuthLockout lock further attempts out for it.
	AuthMaxDelay       Duration `toml:"auth_max_delay"`
	AuthFailuresPerIP  int      `toml:"auth_failures_per_ip"`
	AuthFailuresPerAcc int      `toml:"auth_failures_per_account"`
	AuthLockout        Duration `toml:"auth_lockout"`
}

// MTA configures the transfer daemon and its queue.
type MTA struct {
	Listen []string `toml:"listen"`
	// Metrics is where Prometheus scrapes the MTA's counters ("" off).
	Metrics       string   `toml:"metrics"`
	DNSServer     string   `toml:"dns_server"`
	RemotePort    int      `toml:"remote_port"`
	LocalRetryMax Duration `toml:"local_retry_max"`
	User          string   `toml:"user"`
	// Remote deliveries: a deferred recipient is retried after RetryMin,
	// doubling up to RetryMax, and bounced after QueueLifetime.
	RetryMin      Duration `toml:"retry_min"`
	RetryMax      Duration `toml:"retry_max"`
	QueueLifetime Duration `toml:"queue_lifetime"`
	// DelayWarning is how long a recipient may stay deferred before its
	// sender is told, once (RFC 3464 "delayed"; 0: never), as Postfix's
	// delay_warning_time.
	DelayWarning Duration `toml:"delay_warning"`
	// SRS rewrites the envelope sender of mail an alias forwards out of
	// the local domains (package srs), in SRSDomain ("": see SRSDomain).
	SRS       bool   `toml:"srs"`
	SRSDomain string `toml:"srs_domain"`
	// MTASTSPort is where destinations' MTA-STS policies are fetched
	// with HTTPS: 443 (RFC 8461 §3.3); another port is for tests.
	MTASTSPort int `toml:"mta_sts_port"`
	// TLSReportPeriod is how often TLS reports (RFC 8460) go out, each
	// covering the period before ("24h": daily, by UTC day; 0: never).
	TLSReportPeriod Duration `toml:"tls_report_period"`
	// DNSSECResolver ("host:port") is a validating resolver not on
	// loopback whose AD bit DANE may trust; one on loopback always is.
	DNSSECResolver string `toml:"dnssec_resolver"`
	// HopLimit is how many Received: fields a message may carry (554 5.4.6).
	HopLimit int `toml:"hop_limit"`
	// Outbound concurrency: deliveries in flight in all, and SMTP
	// connections to one destination domain.
	MaxDeliveries           int `toml:"max_deliveries"`
	MaxConnectionsPerDomain int `toml:"max_connections_per_domain"`
	// Smarthost (see relay.go): Relayhost takes all mail for other
	// domains, Routes some domains' mail, instead of their MX hosts.
	Relayhost     string  `toml:"relayhost"`
	RelayhostAuth string  `toml:"relayhost_auth"` // file: "user password", mode 0600
	RelayhostTLS  string  `toml:"relayhost_tls"`  // "starttls" or "implicit"; "" by port
	Routes        []Route `toml:"route"`
	// TLSRoots is a PEM file of CA certificates trusted beside the
	// system's, to verify a relayhost (private CAs, tests).
	TLSRoots string `toml:"tls_roots"`

	relayAuth *Credentials // read from RelayhostAuth at Load
}

// MDA configures the delivery daemon.
type MDA struct {
	MailRoot string `toml:"mail_root"`
	User     string `toml:"user"`
	// Metrics is where Prometheus scrapes the MDA's counters ("" off).
	Metrics string `toml:"metrics"`
	// Quota bounds the bytes of one mailbox (its Maildir with every
	// Maildir++ folder); 0 is no limit. A copy that does not fit is
	// answered 452 4.2.2 and retried; QuotaGrace after the message
	// arrived, the MTA bounces it with 5.2.2.
	Quota      int64    `toml:"quota"`
	QuotaGrace Duration `toml:"quota_grace"`
}

// Limits bound what one client may make the SMTP servers do. They apply
// to the MSA's and the MTA's listeners alike.
type Limits struct {
	MaxRecipients       int      `toml:"max_recipients"`
	MaxCommandLine      int      `toml:"max_command_line"`
	MaxLineLength       int      `toml:"max_line_length"`
	MaxHeaderSize       int      `toml:"max_header_size"`
	MaxCommands         int      `toml:"max_commands"`
	MaxErrors           int      `toml:"max_errors"`
	MaxConnections      int      `toml:"max_connections"`
	MaxConnectionsPerIP int      `toml:"max_connections_per_ip"`
	TrustedNetworks     []string `toml:"trusted_networks"`
	// BareNewline is what to do with a bare LF or CR inside a message:
	// "normalize" or "reject", as Postfix's smtpd_forbid_bare_newline.
	BareNewline string `toml:"bare_newline"`
}

// TLS names the certificate used by every TLS listener.
type TLS struct {
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
}

func defaults() Config {
	return Config{
		StateDir:       "/var/lib/postline",
		UsersFile:      "users",
		MaxMessageSize: 35 << 20,
		SMTPTimeout:    Duration(5 * time.Minute),
		LogLevel:       "info",
		MTA: MTA{RemotePort: 25, LocalRetryMax: Duration(time.Minute), RetryMin: Duration(5 * time.Minute),
			RetryMax: Duration(4 * time.Hour), QueueLifetime: Duration(5 * 24 * time.Hour), HopLimit: 50,
			DelayWarning: Duration(4 * time.Hour), SRS: true, MTASTSPort: 443,
			TLSReportPeriod: Duration(24 * time.Hour),
			MaxDeliveries:   100, MaxConnectionsPerDomain: 10},
		MDA: MDA{MailRoot: "/var/mail/postline", QuotaGrace: Duration(24 * time.Hour)},
		ACME: ACME{Directory: LetsEncrypt, Challenge: "http-01", HTTPListen: ":80", TLSListen: ":443",
			RenewBefore: Duration(30 * 24 * time.Hour)},
		MTASTS: MTASTS{MaxAge: Duration(7 * 24 * time.Hour)},
		MSA: MSA{AuthMaxDelay: Duration(5 * time.Second), AuthFailuresPerIP: 10,
			AuthFailuresPerAcc: 5, AuthLockout: Duration(15 * time.Minute)},
		Limits: Limits{
			MaxRecipients: 1000, MaxCommandLine: 2048, MaxLineLength: 64 << 10,
			MaxHeaderSize: 256 << 10, MaxCommands: 10000, MaxErrors: 20,
			MaxConnections: 1000, MaxConnectionsPerIP: 50,
			TrustedNetworks: []string{"127.0.0.0/8", "::1/128"}, BareNewline: "normalize",
		},
	}
}

// Load reads and validates the file at path.
func Load(path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	src, err := os.ReadFile(abs)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot read config: %w (pass another file with -c)", path, err)
	}
	c := defaults()
	md, err := toml.Decode(string(src), &c)
	if err != nil {
		return nil, decodeError(path, err)
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		var errs []error
		for _, k := range undecoded {
			if !pluginConfigKey(k) {
				errs = append(errs, unknownKeyError(path, string(src), k))
			}
		}
		if len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
	}
	if err := duplicatePlugins(path, string(src), c.Plugins); err != nil {
		return nil, err
	}
	c.Plugins = mergePlugins(c.Plugins)
	c.File = abs
	c.live = &live{}
	c.resolvePaths()
	if err := c.validate(path, string(src)); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) resolvePaths() {
	dir := filepath.Dir(c.File)
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.StateDir)
	abs(&c.UsersFile)
	abs(&c.AliasesFile)
	abs(&c.MSA.TokensFile)
	if c.MSA.TokensFile == "" {
		c.MSA.TokensFile = filepath.Join(filepath.Dir(c.UsersFile), "tokens")
	}
	abs(&c.MDA.MailRoot)
	abs(&c.TLS.Cert)
	abs(&c.MTA.RelayhostAuth)
	abs(&c.MTA.TLSRoots)
	abs(&c.ACME.CARoots)
	abs(&c.TLS.Key)
	for i := range c.Plugins {
		abs(&c.Plugins[i].Path)
	}
	for i, d := range c.Domains {
		if n, err := address.NormalizeDomain(d); err == nil {
			c.Domains[i] = n // else kept as written, for validate to report
		}
	}
	c.Hostname = strings.ToLower(c.Hostname)
}

// recipientDelimiters are the characters recipient_delimiter may be:
// ones that never start a domain and rarely appear in user names.
const recipientDelimiters = "+-_="

func (c *Config) validate(path, src string) error {
	var errs []error
	bad := func(key, format string, args ...any) {
		where := path // a key left out has no line
		if line := lineOfKey(src, key); line > 0 {
			where = fmt.Sprintf("%s:%d", path, line)
		}
		errs = append(errs, fmt.Errorf("%s: %s: %s", where, key, fmt.Sprintf(format, args...)))
	}
	if c.Hostname == "" || strings.ContainsAny(c.Hostname, " \t/@") {
		bad("hostname", "must be this host's fully qualified name, e.g. hostname = \"mail.example.org\"")
	}
	if d := c.RecipientDelimiter; d != "" && !strings.Contains(recipientDelimiters, d) || len(d) > 1 {
		bad("recipient_delimiter", "%q: give one of %q, or \"\" for none", d, strings.Split(recipientDelimiters, ""))
	}
	if len(c.Domains) == 0 {
		bad("domains", "list at least one local domain, e.g. domains = [\"example.org\"]")
	}
	for _, d := range c.Domains {
		if _, err := address.NormalizeDomain(d); err != nil || strings.HasPrefix(d, "[") {
			bad("domains", "%q is not a domain name", d)
		}
	}
	checkAddrs := func(key string, addrs []string) {
		for _, a := range addrs {
			if _, _, err := net.SplitHostPort(a); err != nil {
				bad(key, "%q is not host:port (e.g. \"127.0.0.1:25\" or \"[::]:25\")", a)
			}
		}
	}
	checkAddrs("msa.submission", c.MSA.Submission)
	checkAddrs("msa.submissions", c.MSA.Submissions)
	checkAddrs("mta.listen", c.MTA.Listen)
	checkAddrs("msa.http", c.MSA.HTTP)
	c.validateHTTPPlain(bad)
	if c.MTA.DNSServer != "" {
		checkAddrs("mta.dns_server", []string{c.MTA.DNSServer})
	}
	for key, addr := range map[string]string{"msa.metrics": c.MSA.Metrics, "mta.metrics": c.MTA.Metrics, "mda.metrics": c.MDA.Metrics} {
		if addr != "" {
			checkAddrs(key, []string{addr})
		}
	}
	if c.MTA.RemotePort < 1 || c.MTA.RemotePort > 65535 {
		bad("mta.remote_port", "%d is not a TCP port (1-65535)", c.MTA.RemotePort)
	}
	if r := c.MTA.DNSSECResolver; r != "" && !isHostPort(r) {
		bad("mta.dnssec_resolver", "%q is not host:port; give the validating resolver's address, e.g. \"10.0.0.53:53\"", r)
	}
	if c.MTA.MTASTSPort < 1 || c.MTA.MTASTSPort > 65535 {
		bad("mta.mta_sts_port", "%d is not a TCP port (1-65535); the default, 443, is the one RFC 8461 uses", c.MTA.MTASTSPort)
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		bad("tls.cert", "set both tls.cert and tls.key, or neither for a self-signed certificate")
	}
	if c.MaxMessageSize < 1024 {
		bad("max_message_size", "%d bytes is too small; the default is %d", c.MaxMessageSize, defaults().MaxMessageSize)
	}
	c.validateRetries(bad)
	if c.MDA.Quota < 0 || c.MDA.QuotaGrace.D() < time.Second {
		bad("mda.quota", "quota is bytes per mailbox (0: none) and quota_grace at least \"1s\"; the default grace is \"1d\"")
	}
	c.validateLimits(bad)
	c.validateRelay(bad)
	c.validateACME(bad)
	c.validateMTASTS(bad)
	errs = append(errs, c.validatePlugins(path, src)...)
	if _, err := c.ZerologLevel(); err != nil {
		bad("log_level", "%q is not one of debug, info, warn, error", c.LogLevel)
	}
	return errors.Join(errs...)
}

// IsLocalDomain reports whether domain (any case, optional trailing dot) is
// one of the domains this host receives mail for.
func (c *Config) IsLocalDomain(domain string) bool {
	domain, err := address.NormalizeDomain(domain)
	if err != nil {
		return false
	}
	return slices.Contains(c.localDomains(), domain)
}

// Postmaster is the address that the bare "<Postmaster>" of RFC 5321
// §4.5.1 stands for: postmaster at the first local domain.
func (c *Config) Postmaster() string { return "postmaster@" + c.localDomains()[0] }

// QueueDir is the MTA's spool.
func (c *Config) QueueDir() string { return filepath.Join(c.StateDir, "queue") }

// RunDir holds the daemons' unix sockets.
func (c *Config) RunDir() string { return filepath.Join(c.StateDir, "run") }

// MTASocket is the MTA's trusted SMTP socket, used by the MSA.
func (c *Config) MTASocket() string { return filepath.Join(c.RunDir(), "mta.sock") }

// MTAAdminSocket is the MTA's admin socket, used by `postline queue`.
func (c *Config) MTAAdminSocket() string { return filepath.Join(c.RunDir(), "mta-admin.sock") }

// MTAStatusSocket is where the MTA tells the MSA how a submitted
// message's recipients stand (the HTTP API); reachable like MTASocket.
func (c *Config) MTAStatusSocket() string { return filepath.Join(c.RunDir(), "mta-status.sock") }

// WebhooksFile holds the users' webhooks for the HTTP API's delivery
// events: "webhooks" beside the tokens file.
func (c *Config) WebhooksFile() string {
	return filepath.Join(filepath.Dir(c.MSA.TokensFile), "webhooks")
}

// StatusSocket is where the supervisor answers `postline status`.
func (c *Config) StatusSocket() string { return filepath.Join(c.RunDir(), "status.sock") }

// MTALocalSocket is the MTA's trusted SMTP socket for the mail the MDA
// sends: Sieve redirects and vacation replies.
func (c *Config) MTALocalSocket() string { return filepath.Join(c.RunDir(), "mta-mda.sock") }

// MDASocket is the MDA's LMTP socket, used by the MTA.
func (c *Config) MDASocket() string { return filepath.Join(c.RunDir(), "mda.sock") }

// CertFiles returns the certificate and key paths, the generated
// self-signed pair under state_dir when the config names none.
func (c *Config) CertFiles() (cert, key string, generated bool) {
	if c.TLS.Cert != "" {
		return c.TLS.Cert, c.TLS.Key, false
	}
	if c.ACME.On() { // a self-signed one there until the first is issued
		return filepath.Join(c.ACMEDir(), "cert.pem"), filepath.Join(c.ACMEDir(), "key.pem"), true
	}
	dir := filepath.Join(c.StateDir, "tls")
	return filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), true
}

// validateRetries checks the MTA's retry schedule and its delay warning.
func (c *Config) validateRetries(bad func(key, format string, args ...any)) {
	if c.MTA.LocalRetryMax.D() < time.Second {
		bad("mta.local_retry_max", "must be at least \"1s\"")
	}
	if c.MTA.RetryMin.D() < time.Second || c.MTA.RetryMax < c.MTA.RetryMin {
		bad("mta.retry_min", "must be at least \"1s\" and at most mta.retry_max")
	}
	if c.MTA.QueueLifetime.D() < time.Second {
		bad("mta.queue_lifetime", "must be at least \"1s\"; the default is \"5d\"")
	}
	if d := c.MTA.SRSDomain; d != "" && !c.IsLocalDomain(d) {
		bad("mta.srs_domain", "%q is not one of domains; bounces to SRS addresses must be accepted here, so give a local domain or leave it out", d)
	}
	if p := c.MTA.TLSReportPeriod.D(); p != 0 && p < time.Second {
		bad("mta.tls_report_period", "must be \"24h\" (the default, daily reports as RFC 8460 asks), another duration of at least \"1s\", or \"0\" for none")
	}
	if c.MTA.DelayWarning.D() < 0 {
		bad("mta.delay_warning", "must be a duration such as \"4h\" (the default), or \"0\" for no delay warnings")
	}
}

// SRSDomain is the domain of SRS addresses: mta.srs_domain, else
// MailDomain. It is always a local domain, so bounces to its addresses
// are accepted.
func (c *Config) SRSDomain() string {
	if c.MTA.SRSDomain != "" {
		return c.MTA.SRSDomain
	}
	return c.MailDomain()
}

// MailDomain is the local domain this host speaks for in mail it writes
// itself (SRS, TLS reports): the hostname or its nearest parent that is
// a local domain (mail.example.org gives example.org), else the first
// local domain.
func (c *Config) MailDomain() string {
	for name := c.Hostname; name != ""; {
		if c.IsLocalDomain(name) {
			return name
		}
		_, name, _ = strings.Cut(name, ".")
	}
	if len(c.Domains) > 0 {
		return c.Domains[0]
	}
	return c.Hostname
}

// isHostPort reports whether s is "host:port" with both parts.
func isHostPort(s string) bool {
	host, port, err := net.SplitHostPort(s)
	return err == nil && host != "" && port != ""
}
