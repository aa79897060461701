package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"postline/address"
	"postline/config"
	"postline/dkimkey"
	"postline/dnsrecords"
)

// setupOptions are the flags of `postline setup`.
type setupOptions struct {
	hostname, domain, admin string
	dir, state, mail        string
	dkim                    string
	user, mailUser          string
	smtp, submission        string
	submissions             string
	ips                     []netip.Addr
	force                   bool
}

const setupUsage = `usage: postline setup --hostname NAME --domain DOMAIN [flags]

Makes what a mail host for DOMAIN needs and prints the DNS records to
publish: the config, the system users and folders, a DKIM key, the admin's
account and the postmaster@, abuse@ and report aliases. Run it again and it
keeps what it made before; --force writes the config again (never a key).
`

func parseSetup(args []string, stderr io.Writer) (*setupOptions, error) {
	o := &setupOptions{}
	fs := flag.NewFlagSet("postline setup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, setupUsage); fs.PrintDefaults() }
	fs.StringVar(&o.hostname, "hostname", "", "this host's fully qualified name, as its A/AAAA and PTR records say (required)")
	fs.StringVar(&o.domain, "domain", "", "the mail domain (required)")
	fs.StringVar(&o.admin, "admin", "", "the admin's address in DOMAIN; postmaster@ and abuse@ go there (default admin@DOMAIN)")
	fs.StringVar(&o.dir, "dir", "/etc/postline", "folder of the config, users, aliases and DKIM keys")
	fs.StringVar(&o.state, "state", "/var/lib/postline", "state_dir: the queue, sockets and generated certificates")
	fs.StringVar(&o.mail, "mail", "/var/vmail", "mail_root: the users' Maildirs")
	fs.StringVar(&o.dkim, "dkim", dkimkey.RSA, "DKIM key algorithm: rsa (2048 bits) or ed25519")
	fs.StringVar(&o.user, "user", "postline", "system user of the MSA and the MTA (made when run as root)")
	fs.StringVar(&o.mailUser, "mail-user", "vmail", "system user of the MDA and the Maildirs (made when run as root)")
	fs.StringVar(&o.smtp, "listen-smtp", ":25", "the MTA's listener for mail from the internet")
	fs.StringVar(&o.submission, "listen-submission", ":587", "the MSA's STARTTLS listener")
	fs.StringVar(&o.submissions, "listen-submissions", ":465", "the MSA's implicit TLS listener")
	ipFlag(fs, &o.ips, "a public address of this host, for its A/AAAA and PTR records (repeat for more)")
	fs.BoolVar(&o.force, "force", false, "write the config again even if it exists")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("postline setup: unexpected argument %q; every value is a flag", fs.Arg(0))
	}
	return o, o.validate()
}

// ipFlag adds the repeatable --ip flag, gathering addresses into ips.
func ipFlag(fs *flag.FlagSet, ips *[]netip.Addr, usage string) {
	fs.Func("ip", usage, func(s string) error {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return errors.New("give an IPv4 or IPv6 address, e.g. --ip 192.0.2.10")
		}
		*ips = append(*ips, a)
		return nil
	})
}

// validate checks the flags' values, naming the flag and the fix.
func (o *setupOptions) validate() error {
	var errs []error
	bad := func(flag, format string, a ...any) {
		errs = append(errs, fmt.Errorf("postline setup: --%s: %s", flag, fmt.Sprintf(format, a...)))
	}
	o.hostname = dottedName(o.hostname, "hostname", "this host's fully qualified name", "mail.example.org", bad)
	o.domain = dottedName(o.domain, "domain", "the mail domain", "example.org", bad)
	domain := o.domain
	if o.admin == "" && domain != "" {
		o.admin = "admin@" + domain
	}
	if a, err := address.Parse(o.admin); err != nil || a.Domain != domain {
		bad("admin", "%q is not an address in %s, e.g. --admin you@%s", o.admin, o.domain, o.domain)
	} else {
		o.admin = a.Key()
	}
	if o.dkim != dkimkey.RSA && o.dkim != dkimkey.Ed25519 {
		bad("dkim", "%q: use rsa or ed25519", o.dkim)
	}
	for flag, dir := range map[string]string{"dir": o.dir, "state": o.state, "mail": o.mail} {
		if !filepath.IsAbs(dir) {
			bad(flag, "%q: give an absolute path", dir)
		}
	}
	for flag, name := range map[string]string{"user": o.user, "mail-user": o.mailUser} {
		if !systemUserName.MatchString(name) {
			bad(flag, "%q: give a system user name such as postline (lower case letters, digits, - and _)", name)
		}
	}
	if o.user == o.mailUser {
		bad("mail-user", "%q is also --user; the MDA gets a user of its own (README, Privileges)", o.mailUser)
	}
	for flag, addr := range map[string]string{"listen-smtp": o.smtp, "listen-submission": o.submission, "listen-submissions": o.submissions} {
		if _, port, ok := strings.Cut(addr, ":"); !ok || port == "" {
			bad(flag, "%q: give host:port, or :port for every address", addr)
		}
	}
	return errors.Join(errs...)
}

// systemUserName is what useradd accepts without --badname.
var systemUserName = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// dottedName normalizes the name given to flag, a domain name with at
// least two labels, or reports what to give instead.
func dottedName(name, flag, what, example string, bad func(flag, format string, a ...any)) string {
	normal, err := address.NormalizeDomain(name)
	switch {
	case name == "":
		bad(flag, "give %s, e.g. --%s %s", what, flag, example)
	case err != nil || !strings.Contains(normal, "."):
		bad(flag, "%q is not %s like %s", name, what, example)
	}
	return normal
}

func (o *setupOptions) configPath() string  { return filepath.Join(o.dir, "postline.toml") }
func (o *setupOptions) usersPath() string   { return filepath.Join(o.dir, "users") }
func (o *setupOptions) aliasesPath() string { return filepath.Join(o.dir, "aliases") }
func (o *setupOptions) dkimDir() string     { return filepath.Join(o.dir, "dkim") }

// parseFailed is how a command ends when parsing its flags failed: 0
// after -h, 2 after a wrong flag (printed); done is false on success.
func parseFailed(err error) (code int, done bool) {
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0, true
	case err != nil:
		fmt.Fprintln(os.Stderr, err)
		return 2, true
	}
	return 0, false
}

// setup is `postline setup`: each step says what it made or kept.
func setup(args []string) int {
	o, err := parseSetup(args, os.Stderr)
	if code, done := parseFailed(err); done {
		return code
	}
	s := &setupRun{opts: o, out: os.Stdout, now: time.Now()}
	if err := s.run(); err != nil {
		fmt.Fprintf(os.Stderr, "postline setup: %v\n", err)
		return 1
	}
	return 0
}

// setupRun is one run of setup.
type setupRun struct {
	opts *setupOptions
	out  io.Writer
	now  time.Time
	ids  systemIDs
	key  dnsrecords.DKIMKeyInfo
}

func (s *setupRun) run() error {
	steps := []func() error{s.systemUsers, s.folders, s.dkimKey, s.adminAccount, s.aliases, s.config}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	s.printRecords()
	return nil
}

func (s *setupRun) say(format string, a ...any) { fmt.Fprintf(s.out, format+"\n", a...) }

// config writes the config file unless one is there (or --force), then
// loads it as the daemons will, so setup never leaves one that `postline
// check` refuses.
func (s *setupRun) config() error {
	path := s.opts.configPath()
	if _, err := os.Stat(path); err == nil && !s.opts.force {
		s.say("kept %s (--force writes it again)", path)
		return s.checkConfig(path)
	}
	if err := writeAtomically(path, []byte(s.configText()), 0o644, -1); err != nil {
		return err
	}
	s.say("wrote %s", path)
	return s.checkConfig(path)
}

func (s *setupRun) checkConfig(path string) error {
	if _, err := config.Load(path); err != nil {
		return fmt.Errorf("the config does not load: %w", err)
	}
	return nil
}

// printRecords prints the DNS records to publish and what comes next.
func (s *setupRun) printRecords() {
	o := s.opts
	plan := dnsrecords.Plan{Hostname: o.hostname, Domains: []string{o.domain}, Addresses: o.ips,
		DKIM: map[string]dnsrecords.DKIMKeyInfo{o.domain: s.key}, STSID: s.now.UTC().Format("20060102T150405")}
	s.say("\nPublish these DNS records (zone-file syntax):\n")
	fmt.Fprint(s.out, dnsrecords.Zone(plan.Records()))
	if len(o.ips) == 0 {
		s.say("; and the A/AAAA records of %s and the PTR of each address: give --ip to have them printed", o.hostname)
	}
	s.say("\nThen: postline -c %s check; postline -c %s dns check; start it (systemctl enable --now postline).",
		o.configPath(), o.configPath())
}
