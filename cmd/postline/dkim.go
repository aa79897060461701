package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/miekg/dns"

	"postline/address"
	"postline/config"
	"postline/dkimkey"
	"postline/dnsrecords"
)

const dkimUsage = `usage: postline dkim keygen DOMAIN [--selector S] [--ed25519]

Makes a new DKIM key for DOMAIN in the dkim folder beside the config and
prints its DNS record and the dkim-sign table that uses it. A new selector
beside the old one is how a key is rotated.
`

func dkimCommand(cfg *config.Config, args []string) int {
	if len(args) < 1 || args[0] != "keygen" {
		fmt.Fprint(os.Stderr, dkimUsage)
		return 2
	}
	domain, selector, alg, err := parseKeygen(cfg, args[1:], os.Stderr)
	if code, done := parseFailed(err); done {
		return code
	}
	if err := keygen(cfg, domain, selector, alg, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "postline dkim keygen: %v\n", err)
		return 1
	}
	return 0
}

// parseKeygen reads keygen's DOMAIN and flags, which may come in any
// order.
func parseKeygen(cfg *config.Config, args []string, stderr io.Writer) (domain, selector, alg string, err error) {
	fs := flag.NewFlagSet("postline dkim keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, dkimUsage); fs.PrintDefaults() }
	fs.StringVar(&selector, "selector", dkimkey.DefaultSelector(time.Now()), "the key's selector: a DNS label, new for every key")
	ed := fs.Bool("ed25519", false, "make an Ed25519 key (RFC 8463) instead of RSA-2048")
	var rest []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return "", "", "", err
		}
		if args = fs.Args(); len(args) > 0 {
			rest, args = append(rest, args[0]), args[1:]
		}
	}
	if len(rest) != 1 {
		return "", "", "", fmt.Errorf("postline dkim keygen: give one DOMAIN, e.g. postline dkim keygen %s", cfg.Domains[0])
	}
	domain, err = address.NormalizeDomain(rest[0])
	if err != nil || !cfg.IsLocalDomain(domain) {
		return "", "", "", fmt.Errorf("postline dkim keygen: %q is not one of the domains in %s; add it to domains there first", rest[0], cfg.File)
	}
	if !dkimkey.ValidSelector(selector) {
		return "", "", "", fmt.Errorf("postline dkim keygen: --selector: %q is not a DNS label; give e.g. --selector %s", selector, dkimkey.DefaultSelector(time.Now()))
	}
	alg = dkimkey.RSA
	if *ed {
		alg = dkimkey.Ed25519
	}
	return domain, selector, alg, nil
}

// keygen makes the key and says how to publish and use it.
func keygen(cfg *config.Config, domain, selector, alg string, out io.Writer) error {
	dir := filepath.Join(filepath.Dir(cfg.File), "dkim")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	path := dkimkey.Path(dir, domain, selector)
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s exists; give a new --selector", path)
	}
	key, err := dkimkey.Generate(alg)
	if err != nil {
		return err
	}
	if err := dkimkey.Write(path, key, msaGroup(cfg)); err != nil {
		return err
	}
	record, err := dkimkey.Record(key)
	if err != nil {
		return err
	}
	rr := dnsrecords.Record{Name: dns.Fqdn(selector + "._domainkey." + domain), Type: dns.TypeTXT, Value: record}
	fmt.Fprintf(out, "made %s (%s)\n\nPublish:\n%s\n\n", path, alg, rr)
	fmt.Fprintf(out, `Once the record is in the DNS (postline dns check says so), sign with it:
in %s, the dkim-sign plugin's table for %s becomes

[[plugins.config.keys]]
domain = %q
selector = %q
key_file = %q

then restart postline. Keep the old record published for a few days
(mail in transit is still verified with it), then remove it.
`, cfg.File, domain, domain, selector, path)
	return nil
}
