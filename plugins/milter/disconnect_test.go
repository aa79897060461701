package main

import (
	"context"
	"strings"
	"testing"

	"github.com/d--j/go-milter"

	"postline/plugins/pb"
)

// A client that leaves before DATA (refused at RCPT) has its milter
// session closed at once by the disconnect hook, not after 10 minutes;
// its next connection from the same port starts afresh.
func TestDisconnectClosesSessions(t *testing.T) {
	tm := startMilter(t, script{rcpt: func(to string, _ milter.Modifier) (*milter.Response, error) {
		if strings.HasPrefix(to, "nobody@") {
			return milter.RespReject, nil
		}
		return nil, nil
	}})
	h := newHarness(t, cfgFor(specs(tm)))
	c := client(40601)
	h.must(h.connect(c))
	h.must(h.mail(c, "a@example.test"))
	checkVerdict(t, "rcpt", h.must(h.rcpt(c, "a@example.test", "nobody@example.test")), stdReject)
	if _, err := h.cl.Disconnect(context.Background(), &pb.ConnectRequest{Conn: c}); err != nil {
		t.Fatal(err)
	}
	tm.waitCleanups(t, 1)
	if n := len(h.b.conns.conns); n != 0 {
		t.Errorf("%d connections kept after disconnect", n)
	}
	// Nothing to forget: no error.
	if _, err := h.cl.Disconnect(context.Background(), &pb.ConnectRequest{Conn: client(40602)}); err != nil {
		t.Error(err)
	}
}
