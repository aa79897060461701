// Command antispam is postline's bundled spam filter, built as
// bin/postline-plugin-antispam and run on the MTA's data hook. It scores
// mail that arrives from the internet (never mail from an authenticated
// user): SPF of the client IP and MAIL FROM, DKIM signatures, DMARC
// alignment of the From domain, DNSBL listings of the client IP, header
// and body rules and, optionally, SpamAssassin's spamd. It prepends
// Authentication-Results, X-Spam-Score and X-Spam-Status, files mail at
// or above junk_score into Junk and refuses mail at or above
// reject_score with 550 5.7.1. A DNS failure or a spamd that is down
// only makes that check count nothing; it never fails the message.
//
// The body is read once, in the host's 64 KiB chunks, by everything that
// needs it; only a message for spamd below spamd_max_size is held.
// Enable it in postline.toml (every key is optional; defaults shown):
//
//	[[plugins]]
//	name = "antispam"          # runs bin/postline-plugin-antispam
//	daemon = "mta"
//	hooks = ["data"]
//	[plugins.config]
//	authserv_id = "mx.example.org"   # default: the config's hostname
//	junk_score = 5.0
//	reject_score = 10.0
//	spf_fail = 3.0
//	spf_softfail = 1.0
//	dkim_fail = 2.0                  # no signature verified, one was bad
//	dmarc_reject = 5.0               # DMARC fail, p=reject
//	dmarc_quarantine = 3.0           # DMARC fail, p=quarantine
//	dnsbl_zones = []                 # e.g. ["zen.spamhaus.org"]
//	dnsbl_score = 4.0                # per zone that lists the client
//	body_scan_limit = 1048576        # body rules see the first bytes only
//	dns_server = ""                  # "host:port"; "" = system resolver
//	dns_timeout = "2s"               # per lookup
//	spamd = ""                       # "127.0.0.1:783" asks spamd too
//	spamd_timeout = "10s"
//	spamd_max_size = 512000          # bigger messages skip spamd
//	[[plugins.config.rules]]
//	name = "SUBJECT_LOTTERY"
//	header = "Subject"
//	pattern = "(?i)lottery"
//	score = 2.5
//	[[plugins.config.rules]]
//	name = "OUR_NEWSLETTER"
//	body = "^Sent by our own list server$"
//	score = -3.0
//
// It never writes to stdout: go-plugin's handshake travels there.
package main

import (
	"context"
	"net/netip"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"

	"postline/plugins/sdk"
)

type filter struct {
	mu       sync.Mutex
	hostname string
	cfg      *config
}

// SetHost keeps the host's name, the default authserv-id.
func (f *filter) SetHost(h sdk.Host) {
	f.mu.Lock()
	f.hostname = h.Hostname
	f.mu.Unlock()
}

// Configure checks [plugins.config]; any problem stops the daemon's start.
func (f *filter) Configure(raw map[string]any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := parseConfig(raw, f.hostname)
	if err != nil {
		return err
	}
	f.cfg = c
	return nil
}

func (f *filter) config() *config {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cfg == nil {
		f.cfg, _ = parseConfig(nil, f.hostname) // the defaults cannot fail
	}
	return f.cfg
}

// Data scores one message. Mail from an authenticated user is the MSA's
// business and passes untouched.
func (f *filter) Data(ctx context.Context, m *sdk.Message) (sdk.Verdict, error) {
	if m.Conn == nil {
		m.Conn = &sdk.Conn{} // no session known: nothing to check SPF or DNSBLs against
	}
	if m.Conn.AuthUser != "" {
		return sdk.Continue(), nil
	}
	c := f.config()
	log := sdk.Log().With("queue_id", m.Conn.QueueID)
	r, err := check(ctx, c, m, log)
	if err != nil {
		return sdk.Verdict{}, err
	}
	log.Info("scored", "score", r.total(), "tests", strings.Join(r.tests, ","), "action", r.action(c))
	return r.verdict(c), nil
}

// check runs every test. The DNS checks that need no body run while the
// body streams in, spamd while they finish; DMARC is decided once SPF and
// DKIM are known.
func check(ctx context.Context, c *config, m *sdk.Message, log hclog.Logger) (*report, error) {
	ip, _ := netip.ParseAddr(m.Conn.ClientIP)
	var (
		wg     sync.WaitGroup
		spfOut spfOutcome
		listed []string
		policy dmarcPolicy
		spamd  *spamdAnswer
	)
	wg.Go(func() { spfOut = checkSPF(ctx, c.res, ip, m.Conn.Helo, m.Sender) })
	wg.Go(func() { listed = checkDNSBL(ctx, c.res, ip, c.zones, log) })
	wg.Go(func() { policy = lookupDMARC(ctx, c.res, &m.Header) })
	body, err := readBody(ctx, c, m)
	if err == nil && c.spamd != "" {
		wg.Go(func() { spamd = askSpamdLogged(ctx, c, m, body, log) })
	}
	wg.Wait()
	if err != nil {
		return nil, err
	}
	r := &report{}
	r.addSPF(c.weights, spfOut)
	r.addDKIM(c.weights, body.dkim)
	dmarcRes, asked := evalDMARC(policy, spfOut, body.dkim)
	r.addDMARC(c.weights, dmarcRes, asked)
	r.addDNSBL(c.weights, listed)
	r.addRules(headerHits(c.rules, &m.Header))
	r.addRules(body.hits)
	if spamd != nil {
		r.hit("SPAMD", spamd.score)
	}
	return r, nil
}

// askSpamdLogged asks spamd about a message small enough to have been
// kept. nil means no answer: spamd down, slow or not asked, each logged
// and none the message's fault.
func askSpamdLogged(ctx context.Context, c *config, m *sdk.Message, body bodyOutcome, log hclog.Logger) *spamdAnswer {
	if body.spamd == nil {
		log.Debug("message too big for spamd, not sent",
			"size", max(m.Size, int64(len(m.RawHeader))+body.size), "spamd_max_size", c.spamdMaxSize)
		return nil
	}
	a, err := askSpamd(ctx, c.spamd, c.spamdTimeout, body.spamd)
	if err != nil {
		log.Warn("spamd unavailable, its score is left out", "error", err)
		return nil
	}
	log.Debug("spamd answered", "score", a.score, "symbols", a.symbols)
	return &a
}

func main() { sdk.Serve(&filter{}) }
