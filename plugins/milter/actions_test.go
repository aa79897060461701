package main

import (
	"fmt"
	"testing"

	"github.com/d--j/go-milter"

	"postline/plugins/pb"
)

// answer is one of a milter's answers and the verdict it must become.
type answer struct {
	name string
	resp *milter.Response
	want *pb.Verdict
}

// refusals are the answers that end a transaction, as libmilter's
// SMFIS_REJECT, SMFIS_TEMPFAIL and SMFIR_REPLYCODE give them.
var refusals = []answer{
	{"reject", milter.RespReject, stdReject},
	{"tempfail", milter.RespTempFail, stdTempfail},
	{"reply 554", withCode(554, "5.7.1 Gtube pattern"), reject(554, "5.7.1", "Gtube pattern")},
	{"reply 421", withCode(421, "4.7.0 try later"), tempfail(421, "4.7.0", "try later")},
	{"reply 450 without enhanced code", withCode(450, "greylisted"), tempfail(450, "", "greylisted")},
	// go-milter sends "550-5.7.1 Spam detected\r\n550 5.7.1 See ...".
	{"multi-line reply", withCode(550, "5.7.1 Spam detected\nSee https://example.test/why"),
		reject(550, "5.7.1", "Spam detected See https://example.test/why")},
}

// A refusal at connect, HELO or MAIL refuses the hook call; the milter
// gets nothing past the refused event.
func TestRefusalAtConnectHeloMail(t *testing.T) {
	for _, stage := range []string{"connect", "helo", "mail"} {
		for _, a := range refusals {
			t.Run(stage+"/"+a.name, func(t *testing.T) {
				var sc script
				switch stage {
				case "connect":
					sc.connect = func(string, string, uint16, string, milter.Modifier) (*milter.Response, error) { return a.resp, nil }
				case "helo":
					sc.helo = func(string, milter.Modifier) (*milter.Response, error) { return a.resp, nil }
				case "mail":
					sc.mail = func(string, milter.Modifier) (*milter.Response, error) { return a.resp, nil }
				}
				tm := startMilter(t, sc)
				h := newHarness(t, cfgFor(specs(tm)))
				c := client(40001)
				v, err := h.connect(c)
				if stage == "mail" {
					checkVerdict(t, "connect", h.must(v, err), cont())
					v, err = h.mail(c, "spammer@example.test")
				}
				checkVerdict(t, stage, h.must(v, err), a.want)
				want := envelope(40001, "spammer@example.test")
				switch stage {
				case "connect":
					want = want[:1]
				case "helo":
					want = want[:2]
				}
				checkEvents(t, tm, want...)
			})
		}
	}
}

// A refused recipient refuses that recipient only (libmilter's
// xxfi_envrcpt): the next RCPT and the message still go to the milter.
func TestRcptRefusalRefusesThatRecipientOnly(t *testing.T) {
	for _, a := range refusals {
		t.Run(a.name, func(t *testing.T) {
			tm := startMilter(t, script{rcpt: func(to string, _ milter.Modifier) (*milter.Response, error) {
				if to == "bad@example.test" {
					return a.resp, nil
				}
				return milter.RespContinue, nil
			}})
			h := newHarness(t, cfgFor(specs(tm)))
			c := client(40002)
			checkVerdict(t, "connect", h.must(h.connect(c)), cont())
			checkVerdict(t, "mail", h.must(h.mail(c, "a@example.test")), cont())
			checkVerdict(t, "rcpt bad", h.must(h.rcpt(c, "a@example.test", "bad@example.test")), a.want)
			checkVerdict(t, "rcpt good", h.must(h.rcpt(c, "a@example.test", "good@example.test")), cont())
			checkVerdict(t, "data", h.must(h.data(c, "a@example.test", []string{"good@example.test"}, testMsg)), cont())
			checkEvents(t, tm, concat(envelope(40002, "a@example.test", "bad@example.test", "good@example.test"), testMsgEvents)...)
			if n := tm.sessions.Load(); n != 1 {
				t.Errorf("%d milter connections, want 1", n)
			}
		})
	}
}

// A refusal from DATA to the end of message refuses the message; the
// milter gets nothing after the refused event.
func TestRefusalInMessage(t *testing.T) {
	stages := []struct {
		name   string
		set    func(*script, *milter.Response)
		events []string // from DATA on
	}{
		{"data", func(sc *script, r *milter.Response) {
			sc.data = func(milter.Modifier) (*milter.Response, error) { return r, nil }
		}, testMsgEvents[:1]},
		{"header", func(sc *script, r *milter.Response) {
			sc.header = func(name, _ string, _ milter.Modifier) (*milter.Response, error) {
				if name == "From" {
					return r, nil
				}
				return nil, nil
			}
		}, testMsgEvents[:3]},
		{"end of header", func(sc *script, r *milter.Response) {
			sc.eoh = func(milter.Modifier) (*milter.Response, error) { return r, nil }
		}, testMsgEvents[:5]},
		{"body", func(sc *script, r *milter.Response) {
			sc.body = func([]byte, milter.Modifier) (*milter.Response, error) { return r, nil }
		}, testMsgEvents[:6]},
		{"end of message", func(sc *script, r *milter.Response) {
			sc.eom = func(m milter.Modifier) (*milter.Response, error) {
				// Changes that come with a refusal do not count.
				if err := m.AddHeader("X-Spam", "yes"); err != nil {
					return nil, err
				}
				return r, nil
			}
		}, testMsgEvents},
	}
	for _, st := range stages {
		for _, a := range refusals {
			t.Run(st.name+"/"+a.name, func(t *testing.T) {
				var sc script
				st.set(&sc, a.resp)
				tm := startMilter(t, sc)
				h := newHarness(t, cfgFor(specs(tm)))
				c := client(40003)
				checkVerdict(t, "connect", h.must(h.connect(c)), cont())
				checkVerdict(t, "mail", h.must(h.mail(c, "a@example.test")), cont())
				checkVerdict(t, "rcpt", h.must(h.rcpt(c, "a@example.test", "b@example.test")), cont())
				checkVerdict(t, "data", h.must(h.data(c, "a@example.test", []string{"b@example.test"}, testMsg)), a.want)
				checkEvents(t, tm, concat(envelope(40003, "a@example.test", "b@example.test"), st.events)...)
			})
		}
	}
}

// Discard, at MAIL, RCPT or the end of message, discards the message.
func TestDiscard(t *testing.T) {
	disc := func(...any) (*milter.Response, error) { return milter.RespDiscard, nil }
	for _, stage := range []string{"mail", "rcpt", "eom"} {
		t.Run(stage, func(t *testing.T) {
			var sc script
			switch stage {
			case "mail":
				sc.mail = func(string, milter.Modifier) (*milter.Response, error) { return disc() }
			case "rcpt":
				sc.rcpt = func(string, milter.Modifier) (*milter.Response, error) { return disc() }
			case "eom":
				sc.eom = func(milter.Modifier) (*milter.Response, error) { return disc() }
			}
			tm := startMilter(t, sc)
			h := newHarness(t, cfgFor(specs(tm)))
			c := client(40004)
			checkVerdict(t, "connect", h.must(h.connect(c)), cont())
			v := h.must(h.mail(c, "a@example.test"))
			if stage == "mail" {
				checkVerdict(t, "mail", v, discard())
				return
			}
			checkVerdict(t, "mail", v, cont())
			v = h.must(h.rcpt(c, "a@example.test", "b@example.test"))
			if stage == "rcpt" {
				checkVerdict(t, "rcpt", v, discard())
				return
			}
			checkVerdict(t, "rcpt", v, cont())
			checkVerdict(t, "data", h.must(h.data(c, "a@example.test", []string{"b@example.test"}, testMsg)), discard())
		})
	}
}

// Accept at MAIL is no objection, and ends the milter's part in the
// message: it gets no RCPT, no DATA, no header, no body, no end of message.
func TestAcceptAtMailEndsTheMilterPart(t *testing.T) {
	tm := startMilter(t, script{mail: func(string, milter.Modifier) (*milter.Response, error) { return milter.RespAccept, nil }})
	h := newHarness(t, cfgFor(specs(tm)))
	c := client(40005)
	checkVerdict(t, "connect", h.must(h.connect(c)), cont())
	checkVerdict(t, "mail", h.must(h.mail(c, "friend@example.test")), cont())
	checkVerdict(t, "rcpt", h.must(h.rcpt(c, "friend@example.test", "b@example.test")), cont())
	checkVerdict(t, "data", h.must(h.data(c, "friend@example.test", []string{"b@example.test"}, testMsg)), cont())
	checkEvents(t, tm, envelope(40005, "friend@example.test")...)
}

// Accept and continue at the end of message are no objection: the other
// plugins still run, with the milter's changes.
func TestAcceptAtEndOfMessageKeepsChanges(t *testing.T) {
	for _, resp := range []*milter.Response{milter.RespAccept, milter.RespContinue} {
		t.Run(resp.String(), func(t *testing.T) {
			tm := startMilter(t, script{eom: func(m milter.Modifier) (*milter.Response, error) {
				return resp, m.AddHeader("X-Scanned", "yes")
			}})
			h := newHarness(t, cfgFor(specs(tm)))
			v := h.must(h.data(client(40006), "a@example.test", []string{"b@example.test"}, testMsg))
			checkVerdict(t, "data", v, cont(edit(pb.HeaderEdit_APPEND, "X-Scanned", "yes", 0)))
		})
	}
}

// Quarantine files the message into quarantine_folder (Junk by default),
// with the milter's header edits.
func TestQuarantine(t *testing.T) {
	for _, folder := range []string{"", "Quarantine.Virus"} {
		t.Run(fmt.Sprintf("folder=%q", folder), func(t *testing.T) {
			tm := startMilter(t, script{eom: func(m milter.Modifier) (*milter.Response, error) {
				if err := m.AddHeader("X-Virus", "Eicar-Test-Signature"); err != nil {
					return nil, err
				}
				if err := m.Quarantine("virus found"); err != nil {
					return nil, err
				}
				return milter.RespAccept, m.InsertHeader(0, "X-Quarantined", "yes")
			}})
			cfg := cfgFor(specs(tm))
			want := "Junk"
			if folder != "" {
				cfg["quarantine_folder"] = folder
				want = folder
			}
			h := newHarness(t, cfg)
			v := h.must(h.data(client(40007), "a@example.test", []string{"b@example.test"}, testMsg))
			checkVerdict(t, "data", v, &pb.Verdict{Action: pb.Verdict_FILE_INTO, Folder: want, HeaderEdits: []*pb.HeaderEdit{
				edit(pb.HeaderEdit_APPEND, "X-Virus", "Eicar-Test-Signature", 0),
				edit(pb.HeaderEdit_INSERT, "X-Quarantined", "yes", 0),
			}})
		})
	}
}
