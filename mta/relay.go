package mta

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"

	"postline/config"
	"postline/dsn"
	"postline/mtasts"
	"postline/queue"
	"postline/tlsrpt"
)

// Outcome is what one delivery attempt to one destination gave: a reply
// per recipient (nil: accepted) and the host that gave them, "" when no
// remote host was reached.
type Outcome struct {
	Results   map[string]*smtp.SMTPError
	RemoteMTA string
	// DSN says the host offered the DSN extension and was given the
	// recipients' requests: reporting success is its job now (RFC 3461
	// §5.2.2), not a "relayed" report of ours.
	DSN bool
	// TLS says how the session went (describeTLS), "" for none.
	TLS string
}

// RelayFunc delivers env to rcpts, all in one remote domain, reading the
// message from open.
type RelayFunc func(ctx context.Context, env *queue.Envelope, domain string, rcpts []string,
	open func() (io.ReadCloser, error)) Outcome

// Relayer delivers to other domains: MX lookup (RFC 5321 §5.1), then
// each address of each host in turn until one takes the transaction.
type Relayer struct {
	Config   *config.Config
	Resolver *Resolver
	Dialer   *Dialer
	Self     func(netip.Addr) bool // this host's own addresses
	Log      zerolog.Logger
	// STS finds destination domains' MTA-STS policies (nil: none).
	STS *mtasts.Cache
	// Reports keeps the TLS sessions made under a policy for the TLS
	// reports (nil: none).
	Reports *tlsrpt.Store

	mu      sync.Mutex
	perDest map[string]chan struct{} // connection slots per destination domain
	conns   *connCache               // sessions kept open for the next message
}

var errLoop = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 4, 6},
	Message: "mail for this domain loops back to myself"}

// Relay implements RelayFunc.
func (r *Relayer) Relay(ctx context.Context, env *queue.Envelope, domain string, rcpts []string,
	open func() (io.ReadCloser, error)) Outcome {
	log := r.Log.With().Str("queue_id", env.ID).Str("domain", domain).Logger()
	if hop, ok := r.Config.NextHop(domain); ok {
		return r.relayVia(ctx, log.With().Str("next_hop", hop.Host).Logger(), env, hop, rcpts, open)
	}
	hosts, err := r.Resolver.Route(ctx, domain)
	if err != nil {
		log.Warn().Err(err).Msg("no route")
		return allSame(rcpts, ErrorReply(err), "")
	}
	hosts, self := WithoutSelf(hosts, r.Config.Hostname, r.Self)
	if len(hosts) == 0 && self {
		return allSame(rcpts, errLoop, "")
	}
	dest, refused := r.withPolicy(ctx, log, env, domain, destination{key: domain, hosts: hosts,
		port: r.Config.MTA.RemotePort, dial: r.Dialer.Dial, verifiedDial: r.Dialer.DialVerified,
		policy: policyOpportunistic}, open)
	if refused != nil {
		log.Warn().Str("error", refused.Message).Msg("mta-sts: not delivered")
		out := allSame(rcpts, refused, "")
		out.TLS = dest.policy + ", refused"
		return out
	}
	return r.deliverTo(ctx, log, env, dest, rcpts, open)
}

// relayVia delivers through a next hop: a relayhost or a route.
func (r *Relayer) relayVia(ctx context.Context, log zerolog.Logger, env *queue.Envelope, hop config.NextHop,
	rcpts []string, open func() (io.ReadCloser, error)) Outcome {
	hosts, err := r.Resolver.HopHosts(ctx, hop)
	if err != nil {
		log.Warn().Err(err).Msg("no route to the next hop")
		return allSame(rcpts, ErrorReply(err), "")
	}
	dial := func(ctx context.Context, host, addr string) (*Conn, error) {
		return r.Dialer.DialHop(ctx, hop, host, addr)
	}
	verified := func(ctx context.Context, host, addr string) (*Conn, error) {
		return r.Dialer.dialHop(ctx, hop, host, addr, true)
	}
	return r.deliverTo(ctx, log, env, destination{key: "next hop " + hop.Host, hosts: hosts, port: hop.Port,
		dial: dial, verifiedDial: verified, policy: policyNextHop}, rcpts, open)
}

// destination is where deliverTo tries: the hosts of a domain or of a
// next hop, and how to open a session with one.
type destination struct {
	key   string // connection slots and kept sessions are per key
	hosts []Host
	port  int
	dial  func(ctx context.Context, host, addr string) (*Conn, error)
	// policy names the TLS rules dial follows; testing is an MTA-STS
	// policy in testing mode, whose refusals are only logged.
	policy  string
	testing *mtasts.Policy
	// verifiedDial is dial with verified TLS required, for policies
	// that require it; requireTLS marks a REQUIRETLS message's route.
	verifiedDial func(ctx context.Context, host, addr string) (*Conn, error)
	requireTLS   bool
	// report is what a TLS report says of the policy a session with
	// host runs under (nil: none).
	report func(host string) *tlsrpt.Session
}

// deliverTo runs the transaction with the first host of dest that takes
// it, over a kept session when there is one. A REQUIRETLS message goes
// by requireTLS's rules, whatever route dest is.
func (r *Relayer) deliverTo(ctx context.Context, log zerolog.Logger, env *queue.Envelope, dest destination,
	rcpts []string, open func() (io.ReadCloser, error)) Outcome {
	if env.RequireTLS {
		dest = requireTLS(dest)
	}
	release, err := r.acquire(ctx, dest.key)
	if err != nil {
		return allSame(rcpts, ErrorReply(err), "")
	}
	defer release()
	if c := r.cache().get(dest.key); c != nil {
		log.Info().Str("host", c.Host).Str("addr", c.Addr).Msg("reusing connection")
		// A reused session may have been closed by the server meanwhile
		// (e.g. one message per connection): unless it took the message
		// for someone, send again over a fresh connection.
		if out, err := r.transact(ctx, env, dest, c, rcpts, open); err == nil || anyAccepted(out) {
			return out
		}
	}
	var last *smtp.SMTPError
	allRequireTLS := true // every host failed REQUIRETLS's conditions
	for _, h := range dest.hosts {
		for _, a := range h.Addrs {
			addr := net.JoinHostPort(a.String(), strconv.Itoa(dest.port))
			out, err := r.try(ctx, log, env, dest, h.Name, addr, rcpts, open)
			if err == nil {
				return out
			}
			last = ErrorReply(err)
			allRequireTLS = allRequireTLS && isRequireTLSFailure(last)
			log.Info().Str("host", h.Name).Str("addr", addr).Err(err).Msg("host not usable, trying the next")
		}
	}
	reply := deferral(last)
	if dest.requireTLS && last != nil && allRequireTLS {
		// No host can meet REQUIRETLS (RFC 8689 §4.2.1): bounce, do not
		// wait. One that was only unreachable may yet: wait for it.
		reply = last
	}
	out := allSame(rcpts, reply, "")
	out.TLS = dest.policy + ", no host usable"
	return out
}

// deferral is the reply when no host took the transaction: temporary
// always, as unreachable hosts are a temporary condition (mail waits, as
// RFC 5321 §4.5.4.1 asks, rather than bouncing at the first try), and
// saying why when the last host said.
func deferral(last *smtp.SMTPError) *smtp.SMTPError {
	if last == nil {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 1}, Message: "no MX host accepted a connection"}
	}
	if !last.Temporary() {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 1}, Message: "no MX host accepted a connection: " + last.Message}
	}
	return last
}

// try runs one session with one address; an error means the host could
// not take the transaction at all, and the next one should be tried.
func (r *Relayer) try(ctx context.Context, log zerolog.Logger, env *queue.Envelope, dest destination, host, addr string,
	rcpts []string, open func() (io.ReadCloser, error)) (Outcome, error) {
	c, err := dest.dial(ctx, host, addr)
	if err != nil {
		var tf *tlsFailure
		if errors.As(err, &tf) && tf.resultType != "" {
			r.recordSession(log, dest, host, addr, nil, tf.resultType)
		}
		return Outcome{}, err
	}
	ev := log.Info().Str("host", host).Str("addr", addr).Bool("tls", c.TLS).Str("tls_version", c.TLSVersion)
	if c.TLS && !c.Verified {
		ev = ev.Str("certificate", "untrusted").AnErr("verify_error", c.VerifyError)
	}
	if c.TLSFallback != nil {
		ev = ev.AnErr("tls_failed", c.TLSFallback)
	}
	ev.Str("policy", dest.policy).Msg("connected")
	failure := ""
	if dest.testing != nil {
		failure = checkTesting(log, dest.testing, c)
	}
	r.recordSession(log, dest, host, addr, c, failure)
	out, err := r.transact(ctx, env, dest, c, rcpts, open)
	if out.Results == nil { // the message could not even be read
		return out, err
	}
	return out, nil // per-recipient results, even from a session that broke
}

// transact runs one transaction on c, then parks c for the next message
// to the same domain, or closes it if the session broke.
func (r *Relayer) transact(ctx context.Context, env *queue.Envelope, dest destination, c *Conn,
	rcpts []string, open func() (io.ReadCloser, error)) (Outcome, error) {
	data, err := open()
	if err != nil {
		c.Close()
		return Outcome{}, err
	}
	defer data.Close()
	res, err := Send(ctx, c, env.From, rcpts, data, sendOptions(env, rcpts))
	if err != nil {
		c.Close()
	} else {
		r.cache().put(dest.key, c)
	}
	offered, _ := c.Extension("DSN")
	return Outcome{Results: res, RemoteMTA: c.Host, DSN: offered, TLS: describeTLS(dest.policy, c)}, err
}

// sendOptions is what the next hop is told of env besides its addresses.
func sendOptions(env *queue.Envelope, rcpts []string) SendOptions {
	opts := SendOptions{Size: env.Size, SMTPUTF8: env.SMTPUTF8,
		Return: smtp.DSNReturn(env.Return), EnvID: env.EnvID, RequireTLS: env.RequireTLS}
	for _, r := range env.Recipients {
		if (r.Notify != "" || r.ORcpt != "") && slices.Contains(rcpts, r.Address) {
			if opts.RcptOptions == nil {
				opts.RcptOptions = map[string]*smtp.RcptOptions{}
			}
			typ, addr := dsn.ORcpt(r.ORcpt).Split()
			opts.RcptOptions[r.Address] = &smtp.RcptOptions{Notify: dsn.Notify(r.Notify).Values(),
				OriginalRecipientType: typ, OriginalRecipient: addr}
		}
	}
	return opts
}

func anyAccepted(out Outcome) bool {
	for _, reply := range out.Results {
		if reply == nil {
			return true
		}
	}
	return false
}

func (r *Relayer) cache() *connCache {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conns == nil {
		r.conns = newConnCache(5*time.Second, 2)
	}
	return r.conns
}

func allSame(rcpts []string, reply *smtp.SMTPError, remote string) Outcome {
	res := make(map[string]*smtp.SMTPError, len(rcpts))
	for _, rc := range rcpts {
		res[rc] = reply
	}
	return Outcome{Results: res, RemoteMTA: remote}
}

// SelfAddrs returns a test for this host's own addresses: those
// mta.listen names, or every interface address for a wildcard listener.
func SelfAddrs(cfg *config.Config) func(netip.Addr) bool {
	own := map[netip.Addr]bool{}
	wildcard := false
	for _, l := range cfg.MTA.Listen {
		host, _, _ := net.SplitHostPort(l)
		a, err := netip.ParseAddr(host)
		if host == "" || err == nil && a.IsUnspecified() {
			wildcard = true
		} else if err == nil {
			own[a.Unmap()] = true
		}
	}
	if wildcard {
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, ia := range addrs {
				if p, err := netip.ParsePrefix(ia.String()); err == nil {
					own[p.Addr().Unmap()] = true
				}
			}
		}
	}
	return func(a netip.Addr) bool { return own[a.Unmap()] }
}

// acquire waits for one of the destination's connection slots
// (mta.max_connections_per_domain), so a busy domain gets no more
// parallel sessions than a polite MTA opens.
func (r *Relayer) acquire(ctx context.Context, domain string) (func(), error) {
	r.mu.Lock()
	if r.perDest == nil {
		r.perDest = map[string]chan struct{}{}
	}
	slots := r.perDest[domain]
	if slots == nil {
		slots = make(chan struct{}, max(1, r.Config.MTA.MaxConnectionsPerDomain))
		r.perDest[domain] = slots
	}
	r.mu.Unlock()
	select {
	case slots <- struct{}{}:
		return func() { <-slots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
