package main

import (
	"fmt"
	"sync"
	"testing"

	"github.com/d--j/go-milter"

	"postline/plugins/pb"
)

// The changes of the end of message become header edits, in the milter's
// order, and envelope edits: indexes kept, folded values CRLF-folded,
// addresses without their angle brackets.
func TestEndOfMessageChanges(t *testing.T) {
	tm := startMilter(t, script{eom: func(m milter.Modifier) (*milter.Response, error) {
		for _, step := range []func() error{
			func() error { return m.AddHeader("X-Spam-Score", "3.2") },
			func() error { return m.AddHeader("X-Folded", "first line\r\n\tsecond line\n third line") },
			func() error { return m.InsertHeader(0, "X-Top", "top") },
			func() error { return m.InsertHeader(2, "X-Third", "after the second field") },
			func() error { return m.ChangeHeader(1, "Subject", "[SPAM] hello") },
			func() error { return m.ChangeHeader(2, "Received", "changed") },
			func() error { return m.ChangeHeader(1, "X-Old", "") }, // smfi_chgheader with no value deletes
			func() error { return m.ChangeFrom("bounces@example.test", "") },
			func() error { return m.AddRecipient("c@example.test", "") },
			func() error { return m.DeleteRecipient("<b@example.test>") },
		} {
			if err := step(); err != nil {
				return nil, err
			}
		}
		return milter.RespAccept, nil
	}})
	h := newHarness(t, cfgFor(specs(tm)))
	v := h.must(h.data(client(40101), "a@example.test", []string{"b@example.test"}, testMsg))
	checkVerdict(t, "data", v, &pb.Verdict{
		HeaderEdits: []*pb.HeaderEdit{
			edit(pb.HeaderEdit_APPEND, "X-Spam-Score", "3.2", 0),
			edit(pb.HeaderEdit_APPEND, "X-Folded", "first line\r\n\tsecond line\r\n third line", 0),
			edit(pb.HeaderEdit_INSERT, "X-Top", "top", 0),
			edit(pb.HeaderEdit_INSERT, "X-Third", "after the second field", 2),
			edit(pb.HeaderEdit_CHANGE, "Subject", "[SPAM] hello", 1),
			edit(pb.HeaderEdit_CHANGE, "Received", "changed", 2),
			edit(pb.HeaderEdit_CHANGE, "X-Old", "", 1),
		},
		EnvelopeEdits: &pb.EnvelopeEdits{ChangeSender: true, Sender: "bounces@example.test",
			AddRecipients: []string{"c@example.test"}, RemoveRecipients: []string{"b@example.test"}},
	})
}

// A new null sender (<>) is the empty sender.
func TestChangeFromNullSender(t *testing.T) {
	tm := startMilter(t, script{eom: func(m milter.Modifier) (*milter.Response, error) {
		return milter.RespAccept, m.ChangeFrom("<>", "")
	}})
	h := newHarness(t, cfgFor(specs(tm)))
	v := h.must(h.data(client(40102), "a@example.test", []string{"b@example.test"}, testMsg))
	checkVerdict(t, "data", v, &pb.Verdict{EnvelopeEdits: &pb.EnvelopeEdits{ChangeSender: true, Sender: ""}})
}

// A milter gets header values as sendmail and Postfix pass them: folding
// kept with LF line ends, and the first space after the colon left out
// unless it negotiated SMFIP_HDR_LEADSPC. A value it adds with a leading
// space becomes an edit without it (the host puts ": " itself).
func TestHeaderLeadingSpace(t *testing.T) {
	const msg = "Subject:  two spaces\r\n" +
		"X-Tab:\ttabbed\r\n" +
		"X-Folded: first\r\n second\r\n\tthird\r\n" +
		"X-Empty:\r\n" +
		"X-Tight:tight\r\n" +
		"X-Colon : spaced name\r\n" +
		"\r\n" +
		"body\r\n"
	for _, lead := range []bool{false, true} {
		t.Run(fmt.Sprintf("leadspc=%v", lead), func(t *testing.T) {
			var opts []milter.Option
			if lead {
				opts = append(opts, milter.WithProtocol(milter.OptHeaderLeadingSpace))
			}
			tm := startMilter(t, script{eom: func(m milter.Modifier) (*milter.Response, error) {
				return milter.RespAccept, m.AddHeader("X-Added", " with a leading space")
			}}, opts...)
			h := newHarness(t, cfgFor(specs(tm)))
			v := h.must(h.data(client(40103), "a@example.test", []string{"b@example.test"}, msg))
			checkVerdict(t, "data", v, cont(edit(pb.HeaderEdit_APPEND, "X-Added", "with a leading space", 0)))
			sp := ""
			if lead {
				sp = " "
			}
			checkEvents(t, tm, concat(envelope(40103, "a@example.test", "b@example.test"), []string{
				"data",
				fmt.Sprintf("header Subject=%q", sp+" two spaces"),
				`header X-Tab="\ttabbed"`,
				fmt.Sprintf("header X-Folded=%q", sp+"first\n second\n\tthird"),
				`header X-Empty=""`,
				`header X-Tight="tight"`,
				fmt.Sprintf("header X-Colon=%q", sp+"spaced name"),
				"eoh",
				"body 6",
				"eom",
			})...)
		})
	}
}

// The milters get sendmail's macros: the connection's, TLS and AUTH,
// the envelope's and, at the end of message, the queue ID.
func TestMacros(t *testing.T) {
	var mu sync.Mutex
	got := map[string]string{}
	keep := func(stage string, m milter.Modifier, names ...milter.MacroName) {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range names {
			if v, ok := m.GetEx(n); ok {
				got[stage+" "+n] = v
			}
		}
	}
	tm := startMilter(t, script{
		connect: func(_, _ string, _ uint16, _ string, m milter.Modifier) (*milter.Response, error) {
			keep("connect", m, milter.MacroMTAFQDN, milter.MacroDaemonName, milter.MacroClientAddr, milter.MacroClientPort,
				milter.MacroClientName, milter.MacroClientPTR)
			return nil, nil
		},
		helo: func(_ string, m milter.Modifier) (*milter.Response, error) {
			keep("helo", m, milter.MacroTlsVersion, milter.MacroCipher)
			return nil, nil
		},
		mail: func(_ string, m milter.Modifier) (*milter.Response, error) {
			keep("mail", m, milter.MacroMailAddr, milter.MacroMailHost, milter.MacroMailMailer, milter.MacroAuthAuthen,
				milter.MacroAuthType)
			return nil, nil
		},
		rcpt: func(_ string, m milter.Modifier) (*milter.Response, error) {
			keep("rcpt", m, milter.MacroRcptAddr, milter.MacroRcptHost, milter.MacroRcptMailer)
			return nil, nil
		},
		eom: func(m milter.Modifier) (*milter.Response, error) {
			keep("eom", m, milter.MacroQueueId, milter.MacroMTAFQDN)
			return milter.RespAccept, nil
		},
	})
	h := newHarness(t, cfgFor(specs(tm)))
	c := client(40104)
	c.Tls = &pb.TLS{Version: "TLS1.3", Cipher: "TLS_AES_128_GCM_SHA256"}
	c.AuthUser = "alice"
	h.must(h.data(c, "a@example.test", []string{"b@example.org"}, testMsg))
	want := map[string]string{
		"connect j": "mx.example.test", "connect {daemon_name}": "postline-mta", "connect {client_addr}": "192.0.2.1",
		"connect {client_port}": "40104", "connect {client_name}": "client.example", "connect {client_ptr}": "client.example",
		"helo {tls_version}": "TLS1.3", "helo {cipher}": "TLS_AES_128_GCM_SHA256",
		"mail {mail_addr}": "a@example.test", "mail {mail_host}": "example.test", "mail {mail_mailer}": "esmtp",
		"mail {auth_authen}": "alice", "mail {auth_type}": "PLAIN",
		"rcpt {rcpt_addr}": "b@example.org", "rcpt {rcpt_host}": "example.org", "rcpt {rcpt_mailer}": "esmtp",
		"eom i": "4XyZ1234", "eom j": "mx.example.test",
	}
	mu.Lock()
	defer mu.Unlock()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("macro %s = %q, want %q", k, got[k], v)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected macro %s = %q", k, v)
		}
	}
}

// Without TLS and AUTH, their macros are not sent at all: milters take
// their presence as a fact.
func TestMacrosAbsentWhenEmpty(t *testing.T) {
	var mu sync.Mutex
	var present []string
	check := func(m milter.Modifier, names ...milter.MacroName) {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range names {
			if _, ok := m.GetEx(n); ok {
				present = append(present, n)
			}
		}
	}
	tm := startMilter(t, script{
		helo: func(_ string, m milter.Modifier) (*milter.Response, error) {
			check(m, milter.MacroTlsVersion, milter.MacroCipher)
			return nil, nil
		},
		mail: func(_ string, m milter.Modifier) (*milter.Response, error) {
			check(m, milter.MacroAuthAuthen, milter.MacroAuthType)
			return nil, nil
		},
	})
	h := newHarness(t, cfgFor(specs(tm)))
	h.must(h.data(client(40105), "", []string{"b@example.org"}, testMsg))
	mu.Lock()
	defer mu.Unlock()
	if len(present) > 0 {
		t.Errorf("macros sent with empty values: %q", present)
	}
	checkEvents(t, tm, concat(envelope(40105, "", "b@example.org"), testMsgEvents)...)
}
