package main

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/d--j/go-milter"
	"google.golang.org/protobuf/proto"

	"postline/plugins/pb"
)

// connect → mail → rcpt → data over the stateful hooks is one milter
// connection, which ends with the message.
func TestStatefulHooksShareOneSession(t *testing.T) {
	tm := startMilter(t, script{})
	h := newHarness(t, cfgFor(specs(tm)))
	c := client(40201)
	checkVerdict(t, "connect", h.must(h.connect(c)), cont())
	checkVerdict(t, "mail", h.must(h.mail(c, "a@example.test")), cont())
	checkVerdict(t, "rcpt 1", h.must(h.rcpt(c, "a@example.test", "b@example.test")), cont())
	checkVerdict(t, "rcpt 2", h.must(h.rcpt(c, "a@example.test", "c@example.test")), cont())
	checkVerdict(t, "data", h.must(h.data(c, "a@example.test", []string{"b@example.test", "c@example.test"}, testMsg)), cont())
	checkEvents(t, tm, concat(envelope(40201, "a@example.test", "b@example.test", "c@example.test"), testMsgEvents)...)
	if n := tm.sessions.Load(); n != 1 {
		t.Errorf("%d milter connections, want 1", n)
	}
	tm.waitCleanups(t, 1)
}

// The data hook alone (no earlier hooks, or a restarted plugin) replays
// connect, HELO, MAIL and every RCPT to a new session.
func TestDataAloneReplaysEnvelope(t *testing.T) {
	for _, tc := range []struct{ ip, event string }{
		{"192.0.2.1", "connect client.example tcp4 40202 192.0.2.1"},
		{"::ffff:192.0.2.1", "connect client.example tcp4 40202 192.0.2.1"},
		{"2001:db8::25", "connect client.example tcp6 40202 2001:db8::25"},
	} {
		t.Run(tc.ip, func(t *testing.T) {
			tm := startMilter(t, script{})
			h := newHarness(t, cfgFor(specs(tm)))
			c := client(40202)
			c.ClientIp = tc.ip
			v := h.must(h.data(c, "a@example.test", []string{"b@example.test", "c@example.test"}, testMsg))
			checkVerdict(t, "data", v, cont())
			checkEvents(t, tm, concat([]string{tc.event}, envelope(40202, "a@example.test", "b@example.test", "c@example.test")[1:],
				testMsgEvents)...)
			if n := tm.sessions.Load(); n != 1 {
				t.Errorf("%d milter connections, want 1", n)
			}
		})
	}
}

// A client without a verified name is "[address]", as Postfix names it.
func TestConnectWithoutReverseDNS(t *testing.T) {
	tm := startMilter(t, script{})
	h := newHarness(t, cfgFor(specs(tm)))
	c := client(40203)
	c.ReverseDns = ""
	h.must(h.connect(c))
	checkEvents(t, tm, "connect [192.0.2.1] tcp4 40203 192.0.2.1", "helo client.example")
}

// The rcpt hook of a session that missed MAIL (no mail hook) sends MAIL
// first, and the data hook does not send it again.
func TestRcptWithoutMailHook(t *testing.T) {
	tm := startMilter(t, script{})
	h := newHarness(t, cfgFor(specs(tm)))
	c := client(40204)
	checkVerdict(t, "rcpt", h.must(h.rcpt(c, "a@example.test", "b@example.test")), cont())
	checkVerdict(t, "data", h.must(h.data(c, "a@example.test", []string{"b@example.test"}, testMsg)), cont())
	checkEvents(t, tm, concat(envelope(40204, "a@example.test", "b@example.test"), testMsgEvents)...)
}

// A second message on the same SMTP connection (same address and port)
// gets the milters too, with its own envelope.
func TestSecondMessageSameConnection(t *testing.T) {
	tm := startMilter(t, script{eom: func(m milter.Modifier) (*milter.Response, error) {
		return milter.RespAccept, m.AddHeader("X-Scanned", "yes")
	}})
	h := newHarness(t, cfgFor(specs(tm)))
	c := client(40205)
	scanned := cont(edit(pb.HeaderEdit_APPEND, "X-Scanned", "yes", 0))
	checkVerdict(t, "connect", h.must(h.connect(c)), cont())
	for _, sender := range []string{"first@example.test", "second@example.test"} {
		checkVerdict(t, "mail", h.must(h.mail(c, sender)), cont())
		checkVerdict(t, "rcpt", h.must(h.rcpt(c, sender, "b@example.test")), cont())
		checkVerdict(t, "data", h.must(h.data(c, sender, []string{"b@example.test"}, testMsg)), scanned)
	}
	ev := tm.events()
	for _, want := range []string{"mail <first@example.test>", "mail <second@example.test>"} {
		if !slices.Contains(ev, want) {
			t.Errorf("milter did not get %q: %q", want, ev)
		}
	}
	if n := countOf(ev, "eom"); n != 2 {
		t.Errorf("milter got %d ends of message, want 2: %q", n, ev)
	}
}

func countOf(list []string, s string) int {
	n := 0
	for _, e := range list {
		if e == s {
			n++
		}
	}
	return n
}

// A new MAIL on a session whose message did not reach DATA (RSET, or
// refused by another plugin) aborts the old message first, on the same
// milter connection.
func TestNewMailAbortsUnfinishedMessage(t *testing.T) {
	tm := startMilter(t, script{})
	h := newHarness(t, cfgFor(specs(tm)))
	c := client(40206)
	h.must(h.connect(c))
	h.must(h.mail(c, "first@example.test"))
	h.must(h.rcpt(c, "first@example.test", "b@example.test"))
	checkVerdict(t, "second mail", h.must(h.mail(c, "second@example.test")), cont())
	checkVerdict(t, "rcpt", h.must(h.rcpt(c, "second@example.test", "c@example.test")), cont())
	checkVerdict(t, "data", h.must(h.data(c, "second@example.test", []string{"c@example.test"}, testMsg)), cont())
	checkEvents(t, tm, concat(envelope(40206, "first@example.test", "b@example.test"),
		[]string{"abort", "mail <second@example.test>", "rcpt <c@example.test>"}, testMsgEvents)...)
	if n := tm.sessions.Load(); n != 1 {
		t.Errorf("%d milter connections, want 1", n)
	}
}

// A second connect hook for the same connection before MAIL (EHLO after
// STARTTLS) sends HELO again, with the TLS macros, on the same session.
func TestStartTLSSendsHeloAgain(t *testing.T) {
	var mu sync.Mutex
	var tls []string
	tm := startMilter(t, script{helo: func(_ string, m milter.Modifier) (*milter.Response, error) {
		mu.Lock()
		defer mu.Unlock()
		tls = append(tls, m.Get(milter.MacroTlsVersion))
		return nil, nil
	}})
	h := newHarness(t, cfgFor(specs(tm)))
	c := client(40207)
	checkVerdict(t, "connect", h.must(h.connect(c)), cont())
	c.Tls = &pb.TLS{Version: "TLS1.3", Cipher: "TLS_AES_128_GCM_SHA256"}
	c.Helo = "client.example.after.tls"
	checkVerdict(t, "connect after STARTTLS", h.must(h.connect(c)), cont())
	h.must(h.mail(c, "a@example.test"))
	h.must(h.rcpt(c, "a@example.test", "b@example.test"))
	checkVerdict(t, "data", h.must(h.data(c, "a@example.test", []string{"b@example.test"}, testMsg)), cont())
	checkEvents(t, tm, concat([]string{"connect client.example tcp4 40207 192.0.2.1", "helo client.example",
		"helo client.example.after.tls", "mail <a@example.test>", "rcpt <b@example.test>"}, testMsgEvents)...)
	if n := tm.sessions.Load(); n != 1 {
		t.Errorf("%d milter connections, want 1", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(tls, []string{"", "TLS1.3"}) {
		t.Errorf("{tls_version} at each HELO: %q", tls)
	}
}

// A refusal at the HELO after STARTTLS refuses the connect hook.
func TestStartTLSHeloRefused(t *testing.T) {
	tm := startMilter(t, script{helo: func(_ string, m milter.Modifier) (*milter.Response, error) {
		if m.Get(milter.MacroTlsVersion) == "TLS1.0" {
			return withCode(554, "5.7.0 TLS 1.0 is not enough"), nil
		}
		return nil, nil
	}})
	h := newHarness(t, cfgFor(specs(tm)))
	c := client(40208)
	checkVerdict(t, "connect", h.must(h.connect(c)), cont())
	c.Tls = &pb.TLS{Version: "TLS1.0"}
	checkVerdict(t, "connect after STARTTLS", h.must(h.connect(c)), reject(554, "5.7.0", "TLS 1.0 is not enough"))
}

// A connect hook for an address and port whose session is past MAIL (an
// earlier connection that went away without DATA) starts afresh.
func TestConnectAfterMailStartsAfresh(t *testing.T) {
	tm := startMilter(t, script{})
	h := newHarness(t, cfgFor(specs(tm)))
	c := client(40209)
	h.must(h.connect(c))
	h.must(h.mail(c, "gone@example.test"))
	checkVerdict(t, "new connect", h.must(h.connect(c)), cont())
	tm.waitCleanups(t, 1)
	checkVerdict(t, "data", h.must(h.data(c, "a@example.test", []string{"b@example.test"}, testMsg)), cont())
	if n := tm.sessions.Load(); n != 2 {
		t.Errorf("%d milter connections, want 2", n)
	}
	checkEvents(t, tm, concat(envelope(40209, "gone@example.test"), envelope(40209, "a@example.test", "b@example.test"),
		testMsgEvents)...)
}

// Two milters run in order: a refusal of the first stops the second from
// seeing more of the message.
func TestTwoMiltersFirstRefusalStopsSecond(t *testing.T) {
	t.Run("mail", func(t *testing.T) {
		first := startMilter(t, script{mail: func(string, milter.Modifier) (*milter.Response, error) { return milter.RespReject, nil }})
		second := startMilter(t, script{})
		h := newHarness(t, cfgFor(specs(first, second)))
		c := client(40210)
		checkVerdict(t, "connect", h.must(h.connect(c)), cont())
		checkVerdict(t, "mail", h.must(h.mail(c, "a@example.test")), stdReject)
		checkEvents(t, first, envelope(40210, "a@example.test")...)
		checkEvents(t, second, envelope(40210, "a@example.test")[:2]...)
	})
	t.Run("connect", func(t *testing.T) {
		first := startMilter(t, script{connect: func(string, string, uint16, string, milter.Modifier) (*milter.Response, error) {
			return milter.RespTempFail, nil
		}})
		second := startMilter(t, script{})
		h := newHarness(t, cfgFor(specs(first, second)))
		checkVerdict(t, "connect", h.must(h.connect(client(40211))), stdTempfail)
		if second.sessions.Load() != 0 || len(second.events()) != 0 {
			t.Errorf("second milter was connected: %q", second.events())
		}
		first.waitCleanups(t, 1)
	})
	t.Run("data", func(t *testing.T) {
		first := startMilter(t, script{data: func(milter.Modifier) (*milter.Response, error) { return milter.RespReject, nil }})
		second := startMilter(t, script{})
		h := newHarness(t, cfgFor(specs(first, second)))
		v := h.must(h.data(client(40212), "a@example.test", []string{"b@example.test"}, testMsg))
		checkVerdict(t, "data", v, stdReject)
		checkEvents(t, second, envelope(40212, "a@example.test", "b@example.test")...)
	})
	t.Run("end of message", func(t *testing.T) {
		first := startMilter(t, script{eom: func(milter.Modifier) (*milter.Response, error) { return milter.RespDiscard, nil }})
		second := startMilter(t, script{eom: func(m milter.Modifier) (*milter.Response, error) {
			return milter.RespReject, m.AddHeader("X-Second", "yes")
		}})
		h := newHarness(t, cfgFor(specs(first, second)))
		v := h.must(h.data(client(40213), "a@example.test", []string{"b@example.test"}, testMsg))
		checkVerdict(t, "data", v, discard())
	})
}

// The changes of both milters are kept, in the milters' order; a
// refusal by the second still refuses.
func TestTwoMiltersChangesInOrder(t *testing.T) {
	first := startMilter(t, script{eom: func(m milter.Modifier) (*milter.Response, error) {
		if err := m.AddHeader("X-First", "1"); err != nil {
			return nil, err
		}
		if err := m.Quarantine("suspicious"); err != nil {
			return nil, err
		}
		return milter.RespAccept, m.ChangeFrom("first@example.test", "")
	}})
	second := startMilter(t, script{eom: func(m milter.Modifier) (*milter.Response, error) {
		if err := m.AddHeader("X-Second", "2"); err != nil {
			return nil, err
		}
		if err := m.InsertHeader(0, "X-Second-Top", "2"); err != nil {
			return nil, err
		}
		if err := m.ChangeFrom("second@example.test", ""); err != nil {
			return nil, err
		}
		return milter.RespContinue, m.AddRecipient("d@example.test", "")
	}})
	h := newHarness(t, cfgFor(specs(first, second)))
	v := h.must(h.data(client(40214), "a@example.test", []string{"b@example.test"}, testMsg))
	checkVerdict(t, "data", v, &pb.Verdict{Action: pb.Verdict_FILE_INTO, Folder: "Junk",
		HeaderEdits: []*pb.HeaderEdit{
			edit(pb.HeaderEdit_APPEND, "X-First", "1", 0),
			edit(pb.HeaderEdit_APPEND, "X-Second", "2", 0),
			edit(pb.HeaderEdit_INSERT, "X-Second-Top", "2", 0),
		},
		EnvelopeEdits: &pb.EnvelopeEdits{ChangeSender: true, Sender: "second@example.test", AddRecipients: []string{"d@example.test"}},
	})
	for _, tm := range []*testMilter{first, second} {
		checkEvents(t, tm, concat(envelope(40214, "a@example.test", "b@example.test"), testMsgEvents)...)
	}

	third := startMilter(t, script{eom: func(milter.Modifier) (*milter.Response, error) {
		return withCode(554, "5.7.1 Gtube pattern"), nil
	}})
	h = newHarness(t, cfgFor(specs(first, third)))
	v = h.must(h.data(client(40215), "a@example.test", []string{"b@example.test"}, testMsg))
	checkVerdict(t, "data with a refusing second milter", v, reject(554, "5.7.1", "Gtube pattern"))
}

// Milters that answer SMFIR_SKIP (go-milter's NoOpMilter does for RCPT,
// header and body when SMFIP_SKIP is negotiated) and that want no replies
// still get the whole message once and end it.
func TestSkipAndNoReplies(t *testing.T) {
	skip := func() (*milter.Response, error) { return milter.RespSkip, nil }
	tm := startMilter(t, script{
		rcpt:   func(string, milter.Modifier) (*milter.Response, error) { return skip() },
		header: func(string, string, milter.Modifier) (*milter.Response, error) { return skip() },
		body:   func([]byte, milter.Modifier) (*milter.Response, error) { return skip() },
		eom: func(m milter.Modifier) (*milter.Response, error) {
			return milter.RespAccept, m.AddHeader("X-Skipper", "yes")
		},
	}, milter.WithProtocol(milter.OptSkip))
	quiet := startMilter(t, script{eom: func(m milter.Modifier) (*milter.Response, error) {
		return milter.RespAccept, m.AddHeader("X-Quiet", "yes")
	}}, milter.WithProtocol(milter.OptNoReplies))
	h := newHarness(t, cfgFor(specs(tm, quiet)))
	c := client(40216)
	h.must(h.connect(c))
	h.must(h.mail(c, "a@example.test"))
	h.must(h.rcpt(c, "a@example.test", "b@example.test"))
	h.must(h.rcpt(c, "a@example.test", "c@example.test"))
	msg := testMsg + string(make([]byte, 200<<10)) // several body chunks
	v := h.must(h.data(c, "a@example.test", []string{"b@example.test", "c@example.test"}, msg))
	checkVerdict(t, "data", v, cont(edit(pb.HeaderEdit_APPEND, "X-Skipper", "yes", 0), edit(pb.HeaderEdit_APPEND, "X-Quiet", "yes", 0)))
	checkEvents(t, tm, "connect client.example tcp4 40216 192.0.2.1", "helo client.example", "mail <a@example.test>",
		"rcpt <b@example.test>", "data", `header Received="from client.example (client.example [192.0.2.1])\n\tby mx.example.test; Mon, 1 Jan 2024 00:00:00 +0000"`,
		"eoh", "body 65535", "eom")
	if got, want := quiet.bodySize.Load(), int64(len(msg)-len(testMsg)+len("Hi.\r\n")); got != want {
		t.Errorf("quiet milter got %d body bytes, want %d", got, want)
	}
}

// SMTP connections in parallel each keep their own sessions: every
// message gets the answer about its own sender.
func TestParallelConnections(t *testing.T) {
	tm := startMilter(t, script{eom: func(m milter.Modifier) (*milter.Response, error) {
		return milter.RespAccept, m.AddHeader("X-Sender", m.Get(milter.MacroMailAddr))
	}})
	h := newHarness(t, cfgFor(specs(tm)))
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := client(41000 + i)
			sender := fmt.Sprintf("s%d@example.test", i)
			for _, step := range []func() (*pb.Verdict, error){
				func() (*pb.Verdict, error) { return h.connect(c) },
				func() (*pb.Verdict, error) { return h.mail(c, sender) },
				func() (*pb.Verdict, error) { return h.rcpt(c, sender, "b@example.test") },
			} {
				if v, err := step(); err != nil || !proto.Equal(v, cont()) {
					errs <- fmt.Sprintf("%s: %v %v", sender, v, err)
					return
				}
			}
			v, err := h.data(c, sender, []string{"b@example.test"}, testMsg)
			if want := cont(edit(pb.HeaderEdit_APPEND, "X-Sender", sender, 0)); err != nil || !proto.Equal(v, want) {
				errs <- fmt.Sprintf("%s: data %v %v", sender, v, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if got := tm.sessions.Load(); got != n {
		t.Errorf("%d milter connections, want %d", got, n)
	}
}
