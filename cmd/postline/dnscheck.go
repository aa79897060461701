package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"postline/config"
	"postline/dkimkey"
	"postline/dnsrecords"
)

const dnsUsage = `usage: postline dns check [--ip ADDRESS]...

Asks the DNS (mta.dns_server, or /etc/resolv.conf's) for every record
postline setup printed and says of each: ok, missing or wrong. Without
--ip, the host's addresses are those of its hostname. Exits 0 only when
every required record is right.
`

func dnsCommand(cfg *config.Config, args []string) int {
	ips, err := parseDNSCheck(args, os.Stderr)
	if code, done := parseFailed(err); done {
		return code
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if !dnsCheck(ctx, cfg, ips, os.Stdout) {
		return 1
	}
	return 0
}

func parseDNSCheck(args []string, stderr io.Writer) ([]netip.Addr, error) {
	if len(args) < 1 || args[0] != "check" {
		return nil, errors.New(strings.TrimSpace(dnsUsage))
	}
	fs := flag.NewFlagSet("postline dns check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, dnsUsage); fs.PrintDefaults() }
	var ips []netip.Addr
	ipFlag(fs, &ips, "a public address of this host (repeat for more)")
	if err := fs.Parse(args[1:]); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("postline dns check: unexpected argument %q; give addresses with --ip", fs.Arg(0))
	}
	return ips, nil
}

// dnsCheck prints a line per record and reports whether every required
// one is right.
func dnsCheck(ctx context.Context, cfg *config.Config, ips []netip.Addr, out io.Writer) bool {
	c := &dnsrecords.Checker{Resolver: dnsrecords.NewResolver(cfg.MTA.DNSServer), Host: cfg.Hostname, Hosts: ips}
	ok := true
	if len(ips) == 0 {
		addrs, err := c.Resolver.LookupNetIP(ctx, "ip", cfg.Hostname+".")
		for _, a := range addrs {
			c.Hosts = append(c.Hosts, a.Unmap())
		}
		if len(c.Hosts) == 0 {
			fmt.Fprintf(out, "%-8s A/AAAA %s. (%v): give the host's address in its A and AAAA records\n", dnsrecords.Missing, cfg.Hostname, err)
			ok = false
		}
	}
	plan, problems := checkPlan(cfg, c.Hosts)
	for _, p := range problems {
		fmt.Fprintf(out, "%-8s %s\n", dnsrecords.Failed, p)
		ok = false
	}
	for _, r := range plan.Records() {
		res := c.Check(ctx, r)
		optional := ""
		if r.Optional {
			optional = " (optional)"
		} else if res.Status != dnsrecords.OK {
			ok = false
		}
		fmt.Fprintf(out, "%-8s %s %s%s: %s\n", res.Status, typeName(r), r.Name, optional, res.Detail)
	}
	return ok
}

func typeName(r dnsrecords.Record) string { return strings.Fields(r.String())[3] }

// checkPlan is the records the config calls for; a DKIM key that cannot
// be read is a problem to report, not a record to ask for.
func checkPlan(cfg *config.Config, hosts []netip.Addr) (dnsrecords.Plan, []string) {
	plan := dnsrecords.Plan{Hostname: cfg.Hostname, Domains: cfg.Domains, Addresses: hosts,
		DKIM: map[string]dnsrecords.DKIMKeyInfo{}}
	var problems []string
	for _, k := range cfg.DKIMKeys() {
		key, err := dkimkey.Read(k.KeyFile)
		var record string
		if err == nil {
			record, err = dkimkey.Record(key)
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("DKIM key of %s: %v", k.Domain, err))
			continue
		}
		plan.DKIM[k.Domain] = dnsrecords.DKIMKeyInfo{Selector: k.Selector, Record: record, KeyFile: k.KeyFile}
	}
	return plan, problems
}
