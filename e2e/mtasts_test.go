package e2e

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"postline/queue"
)

// policyHost serves the MTA-STS policies of several test domains over
// HTTPS at mta-sts.<domain>, with a certificate of the test CA.
type policyHost struct {
	IP   string
	Port int

	mu       sync.Mutex
	policies map[string]string // domain: body
	down     map[string]bool   // domain: answer 503
}

func startPolicyHost(t *testing.T, ca *testCA, domains ...string) *policyHost {
	t.Helper()
	var names []string
	for _, d := range domains {
		names = append(names, "mta-sts."+d)
	}
	var l net.Listener
	for range 100 {
		var err error
		if l, err = net.Listen("tcp", net.JoinHostPort(randomLoopback(), "0")); err == nil {
			break
		}
	}
	p := &policyHost{policies: map[string]string{}, down: map[string]bool{}}
	host, port, _ := net.SplitHostPort(l.Addr().String())
	p.IP, p.Port = host, atoi(port)
	srv := &http.Server{Handler: p, TLSConfig: &tls.Config{Certificates: []tls.Certificate{ca.issue(t, names...)}}}
	go srv.ServeTLS(l, "", "")
	t.Cleanup(func() { srv.Close() })
	return p
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func (p *policyHost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	domain := strings.TrimPrefix(strings.Split(r.Host, ":")[0], "mta-sts.")
	p.mu.Lock()
	body, ok := p.policies[domain]
	down := p.down[domain]
	p.mu.Unlock()
	switch {
	case r.URL.Path != "/.well-known/mta-sts.txt" || !ok:
		http.NotFound(w, r)
	case down:
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	case strings.HasPrefix(body, "redirect:"):
		http.Redirect(w, r, strings.TrimPrefix(body, "redirect:"), http.StatusMovedPermanently)
	default:
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, body)
	}
}

func (p *policyHost) set(domain, body string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.policies[domain] = body
}

func (p *policyHost) setDown(domain string, down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down[domain] = down
}

// publish adds domain's policy: its TXT record with id, the policy
// host's address, and the body.
func (p *policyHost) publish(t *testing.T, n *relayNet, domain, id, body string) {
	n.DNS.Add(t, "mta-sts."+domain+". A "+p.IP)
	n.DNS.Replace(t, fmt.Sprintf(`_mta-sts.%s. TXT "v=STSv1; id=%s;"`, domain, id))
	p.set(domain, body)
}

func enforcePolicy(mx ...string) string {
	return "version: STSv1\r\nmode: enforce\r\nmx: " + strings.Join(mx, "\r\nmx: ") + "\r\nmax_age: 86400\r\n"
}

// MTA-STS outbound (RFC 8461): in enforce mode only the listed MX hosts
// over verified TLS, a bad certificate defers (no plaintext), testing
// mode delivers and logs, a policy that does not parse or comes through
// a redirect counts as none,
// and a cached policy is used while the policy host is down, also
// after a restart. `postline queue show` tells the policy and the
// certificate check.
func TestMTASTSOutbound(t *testing.T) {
	t.Parallel()
	n := newRelayNet(t)
	ca := newTestCA(t)
	domains := []string{"enforce.test", "badcert.test", "testing.test", "invalid.test", "cache.test", "moved.test"}
	ph := startPolicyHost(t, ca, domains...)
	good := func(name string) *sink {
		return n.Sink(sinkOptions{TLS: &tls.Config{Certificates: []tls.Certificate{ca.issue(t, name)}}})
	}
	selfSigned := func() *sink { return n.Sink(sinkOptions{StartTLS: true}) }
	mx := map[string]*sink{"enforce.test": good("mx.enforce.test"), "badcert.test": selfSigned(),
		"testing.test": selfSigned(), "invalid.test": selfSigned(), "cache.test": good("mx.cache.test"),
		"moved.test": selfSigned()}
	evil := selfSigned() // the preferred MX of enforce.test and later cache.test, in no policy
	for _, d := range domains {
		n.DNS.Add(t, d+". MX 10 mx."+d+".", "mx."+d+". A "+mx[d].IP)
	}
	n.DNS.Add(t, "enforce.test. MX 5 evil.enforce.test.", "evil.enforce.test. A "+evil.IP,
		"evil.cache.test. A "+evil.IP)
	ph.publish(t, n, "enforce.test", "1", enforcePolicy("mx.enforce.test"))
	ph.publish(t, n, "badcert.test", "1", enforcePolicy("*.badcert.test"))
	ph.publish(t, n, "testing.test", "1", "version: STSv1\nmode: testing\nmx: mx.testing.test\nmax_age: 86400\n")
	ph.publish(t, n, "invalid.test", "1", "version: STSv1\nmode: enforce\nmx: mx.invalid.test\n") // no max_age
	ph.publish(t, n, "cache.test", "1", enforcePolicy("mx.cache.test"))
	// RFC 8461 §3.3: a redirect is not followed, even to a valid policy.
	ph.publish(t, n, "moved.test", "1", "redirect:https://mta-sts.enforce.test/.well-known/mta-sts.txt")
	s := n.Stack(relayConfig{MTA: fmt.Sprintf("tls_roots = %q\nmta_sts_port = %d\n", ca.File, ph.Port)})

	for _, d := range []string{"enforce.test", "testing.test", "invalid.test", "cache.test", "moved.test"} {
		submitRelay(t, s, relayMessage("to "+d, "user@"+d), "user@"+d)
		if got := mx[d].WaitMessages(t, 1, 10*time.Second)[0]; (d == "enforce.test" || d == "cache.test") && got.TLS == nil {
			t.Errorf("%s: delivered without TLS", d)
		}
	}
	if evil.Conns() != 0 {
		t.Errorf("the MX host not in enforce.test's policy got %d connections", evil.Conns())
	}
	waitLogEvent(t, s, "connected", func(ev map[string]any) bool {
		return ev["host"] == "mx.enforce.test" && ev["policy"] == "mta-sts"
	})
	waitLogEvent(t, s, "mta-sts testing: enforce would refuse this session", func(ev map[string]any) bool {
		return ev["host"] == "mx.testing.test" && strings.Contains(ev["reason"].(string), "certificate")
	})
	waitLogEvent(t, s, "mta-sts policy not fetched", func(ev map[string]any) bool {
		return ev["domain"] == "invalid.test" && strings.Contains(ev["error"].(string), "max_age")
	})
	waitLogEvent(t, s, "mta-sts policy not fetched", func(ev map[string]any) bool {
		return ev["domain"] == "moved.test" && strings.Contains(ev["error"].(string), "redirects")
	})

	// A certificate not valid for the MX name defers, and the queue says why.
	bad := submitRelay(t, s, relayMessage("to badcert", "user@badcert.test"), "user@badcert.test")
	env := waitEnvelope(t, s, bad, attempted)
	if r := env.Recipients[0]; r.State != queue.Pending || !strings.Contains(r.LastError, "4.7.10") ||
		r.TLS != "mta-sts, no host usable" {
		t.Errorf("badcert.test: %+v", r)
	}
	if got := len(mx["badcert.test"].Messages()); got != 0 || mx["badcert.test"].Conns() == 0 {
		t.Errorf("badcert.test's MX: %d connections, %d messages; want tries and no message", mx["badcert.test"].Conns(), got)
	}
	if out := s.Postline("", "queue", "show", bad); !strings.Contains(out, "        tls: mta-sts, no host usable\n") {
		t.Errorf("queue show lacks the TLS policy:\n%s", out)
	}
	// "TLS-Required: No" (RFC 8689 §5) waives the policy for its message.
	submitRelay(t, s, "TLS-Required: No\r\n"+relayMessage("waived", "user@badcert.test"), "user@badcert.test")
	if got := mx["badcert.test"].WaitMessages(t, 1, 10*time.Second)[0]; !strings.Contains(string(got.Data), "Subject: waived") {
		t.Errorf("badcert.test got %q", got.Data)
	}

	// The policy host goes down as the id changes; meanwhile the
	// domain gets a preferred MX outside its policy. The cached policy
	// still rules, also after a restart.
	ph.setDown("cache.test", true)
	n.DNS.Replace(t, `_mta-sts.cache.test. TXT "v=STSv1; id=2;"`)
	n.DNS.Add(t, "cache.test. MX 5 evil.cache.test.")
	for i, restart := range []bool{false, true} {
		if restart {
			s.stop()
			s.start()
		}
		submitRelay(t, s, relayMessage(fmt.Sprintf("cached %d", i), "user@cache.test"), "user@cache.test")
		mx["cache.test"].WaitMessages(t, 2+i, 10*time.Second)
		if evil.Conns() != 0 {
			t.Fatalf("with a cached enforce policy, the unlisted MX got %d connections", evil.Conns())
		}
	}
	waitLogEvent(t, s, "mta-sts policy not fetched", func(ev map[string]any) bool {
		return ev["domain"] == "cache.test" && ev["cached"] == true
	})
}
