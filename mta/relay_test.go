package mta

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"postline/config"
	"postline/queue"
)

// relayTo returns a Relayer whose remote port is the test server's, and
// the address-literal domain that routes to it without DNS.
func relayTo(t *testing.T, r *remoteMTA) (*Relayer, string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(r.addr)
	p, _ := strconv.Atoi(port)
	cfg := &config.Config{Hostname: testHostname, MTA: config.MTA{RemotePort: p, MaxConnectionsPerDomain: 2}}
	return &Relayer{Config: cfg, Resolver: &Resolver{}, Dialer: testDialer(), Log: zerolog.Nop(),
		Self: func(netip.Addr) bool { return false }}, "[" + host + "]"
}

func openMessage() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(testMessage)), nil }

// Two messages to one domain in a row share one session (RSET between).
func TestRelayReusesConnection(t *testing.T) {
	remote := startRemote(t, nil)
	r, domain := relayTo(t, remote)
	env := &queue.Envelope{ID: queue.NewID(time.Now()), From: "alice@example.org"}
	for i := 0; i < 2; i++ {
		out := r.Relay(context.Background(), env, domain, []string{"bob@" + domain}, openMessage)
		if reply := out.Results["bob@"+domain]; reply != nil {
			t.Fatalf("message %d: %v", i+1, reply)
		}
	}
	if got := remote.snapshot(); got.conns != 1 || len(got.bodies) != 2 {
		t.Errorf("%d connections for %d messages, want 1 for 2", got.conns, len(got.bodies))
	}
}
