package host

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"os/exec"
	"strings"
	"testing"
)

var conn = ConnInfo{ClientIP: "192.0.2.1", ClientPort: 40000, ReverseDNS: "client.example", Helo: "client.example",
	Protocol: "ESMTP", QueueID: "06K03AGGXD8H8HT5"}

func TestRcptEachVerdict(t *testing.T) {
	c, _ := startChain(t, "mta", spec("echo", "echo", "mta", map[string]any{"mark": "e", "number": 42}))
	edits := []HeaderEdit{{Prepend, "X-Echo", "e", 0}}
	for _, tc := range []struct {
		rcpt string
		want Result
	}{
		{"continue@example.test", Result{Action: Continue, Edits: edits}},
		{"accept@example.test", Result{Action: Accept, Edits: edits, By: "echo"}},
		{"reject@example.test", Result{Action: Reject, Reply: Reply{554, "5.7.1", "echo says no"}, Edits: edits, By: "echo"}},
		{"tempfail@example.test", Result{Action: Tempfail, Reply: Reply{450, "4.2.0", "echo says later"}, Edits: edits, By: "echo"}},
		{"discard@example.test", Result{Action: Discard, Edits: edits, By: "echo"}},
		{"junk@example.test", Result{Action: Continue, Folder: "Junk", Edits: edits}},
	} {
		got := c.Rcpt(context.Background(), RcptInfo{Conn: conn, Sender: "a@example.test", Recipient: tc.rcpt})
		if !equalResult(got, tc.want) {
			t.Errorf("Rcpt %s = %+v, want %+v", tc.rcpt, got, tc.want)
		}
	}
}

func equalResult(a, b Result) bool {
	if len(a.Edits) != len(b.Edits) {
		return false
	}
	for i := range a.Edits {
		if a.Edits[i] != b.Edits[i] {
			return false
		}
	}
	a.Edits, b.Edits = nil, nil
	return a.Action == b.Action && a.Reply == b.Reply && a.Folder == b.Folder && a.By == b.By
}

func TestEveryHook(t *testing.T) {
	ctx := context.Background()
	c, _ := startChain(t, "mta", spec("echo", "echo", "mta", nil))
	if got := c.Connect(ctx, ConnInfo{Helo: "reject"}); got.Action != Reject {
		t.Errorf("Connect = %+v, want reject", got)
	}
	if got := c.Mail(ctx, MailInfo{Conn: conn, Sender: "tempfail@example.test"}); got.Action != Tempfail {
		t.Errorf("Mail = %+v, want tempfail", got)
	}
	tx := TxInfo{Conn: conn, Sender: "a@example.test", Recipients: []string{"b@example.test"}}
	if got := c.Data(ctx, tx, header("discard"), strings.NewReader("body\r\n")); got.Action != Discard {
		t.Errorf("Data = %+v, want discard", got)
	}
	mda, _ := startChain(t, "mda", spec("echo", "echo", "mda", nil))
	got := mda.Deliver(ctx, DeliveryInfo{Recipient: "b@example.test", QueueID: "Q1"}, header("junk"), nil)
	if got.Folder != "Junk" || got.Action != Continue {
		t.Errorf("Deliver = %+v, want file into Junk", got)
	}
	if s := mda.Status(); len(s) != 1 || strings.Join(s[0].Hooks, ",") != "deliver" {
		t.Errorf("mda status = %+v, want the deliver hook only", s)
	}
}

// TestChainOrder: plugins run by order; ACCEPT and REJECT stop the chain,
// FILE_INTO does not, and edits add up in order.
func TestChainOrder(t *testing.T) {
	a := spec("a", "echo", "mta", map[string]any{"mark": "a"})
	b := spec("b", "echo", "mta", map[string]any{"mark": "b"})
	a.Order, b.Order = 2, 1
	c, _ := startChain(t, "mta", a, b)
	rcpt := func(local string) Result {
		return c.Rcpt(context.Background(), RcptInfo{Conn: conn, Recipient: local + "@example.test"})
	}
	got := rcpt("junk")
	want := Result{Folder: "Junk", Edits: []HeaderEdit{{Prepend, "X-Echo", "b", 0}, {Prepend, "X-Echo", "a", 0}}}
	if !equalResult(got, want) {
		t.Errorf("junk: %+v, want %+v", got, want)
	}
	got = rcpt("accept")
	want = Result{Action: Accept, By: "b", Edits: []HeaderEdit{{Prepend, "X-Echo", "b", 0}}}
	if !equalResult(got, want) {
		t.Errorf("accept: %+v, want %+v", got, want)
	}
	if got = rcpt("reject"); got.By != "b" || len(got.Edits) != 1 {
		t.Errorf("reject: %+v, want decided by b alone", got)
	}
}

func TestPluginErrorIsNotACrash(t *testing.T) {
	c, buf := startChain(t, "mta", spec("echo", "echo", "mta", nil))
	pid := pidOf(t, c, "echo")
	got := c.Rcpt(context.Background(), RcptInfo{Conn: conn, Recipient: "error@example.test"})
	want := Result{Action: Tempfail, Reply: Reply{451, "4.7.0", "filter echo unavailable"}, By: "echo"}
	if !equalResult(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	buf.waitLine(t, `"plugin":"echo"`, `"reason":"error"`, "echo was asked to fail")
	if s := c.Status()[0]; s.PID != pid || s.Restarts != 0 {
		t.Errorf("a returned error restarted the plugin: %+v", s)
	}
}

// TestVerdictRepaired: a plugin cannot forge SMTP reply lines or header
// lines, nor give a 2xx code to a rejection.
func TestVerdictRepaired(t *testing.T) {
	c, buf := startChain(t, "mta", spec("echo", "echo", "mta", nil))
	got := c.Rcpt(context.Background(), RcptInfo{Conn: conn, Recipient: "evil@example.test"})
	want := Result{Action: Reject, Reply: Reply{550, "5.7.1", "ok  250 fake"}, By: "echo"}
	if !equalResult(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	buf.waitLine(t, "plugin verdict repaired", "reply code 250")
	buf.waitLine(t, "plugin verdict repaired", "X-Evil")
}

func TestExamplePlugin(t *testing.T) {
	ctx := context.Background()
	c, _ := startChain(t, "mta", spec("example", "example", "mta", map[string]any{"word": "Lottery"}))
	if !c.Has(HookData) || c.Has(HookRcpt) || c.WantsBody() {
		t.Errorf("status %+v: want a headers-only data hook", c.Status())
	}
	tx := TxInfo{Conn: conn, Sender: "a@example.test", Recipients: []string{"b@example.test"}}
	got := c.Data(ctx, tx, []byte("Subject: You won the LOTTERY\r\n\r\n"), nil)
	if got.Action != Reject || got.Reply != (Reply{550, "5.7.1", "message refused by content filter"}) {
		t.Errorf("lottery: %+v", got)
	}
	h := header("")
	got = c.Data(ctx, tx, h, nil)
	out, err := ApplyEdits(h, got.Edits)
	if got.Action != Continue || err != nil || string(out) != "X-Example: checked\r\n"+string(h) {
		t.Errorf("plain: %+v %v\n%s", got, err, out)
	}
	_, err = Start(ctx, []Spec{spec("example", "example", "mta", nil)}, Options{Daemon: "mta"})
	if err == nil || !strings.Contains(err.Error(), "word") {
		t.Errorf("example without its word: err = %v", err)
	}
}

// TestDataEditsApplied: the edits of a Data result applied to the header
// leave every field no edit touched byte for byte.
func TestDataEditsApplied(t *testing.T) {
	c, _ := startChain(t, "mta", spec("echo", "echo", "mta", map[string]any{"mark": "m"}),
		spec("counter", "counter", "mta", nil))
	h := header("continue")
	got := c.Data(context.Background(), TxInfo{Conn: conn}, h, strings.NewReader("12345"))
	out, err := ApplyEdits(h, got.Edits)
	if err != nil {
		t.Fatal(err)
	}
	want := "X-Echo: m\r\n" + string(h[:len(h)-2]) + "X-Body-Bytes: 5\r\n\r\n"
	if string(out) != want {
		t.Errorf("got\n%q\nwant\n%q", out, want)
	}
}

func TestHeadersOnlyGetsNoBody(t *testing.T) {
	ctx := context.Background()
	only := spec("only", "counter", "mta", map[string]any{"headers_only": true})
	c, _ := startChain(t, "mta", only)
	if c.WantsBody() {
		t.Error("WantsBody with a headers-only plugin")
	}
	body := bytes.Repeat([]byte("x"), 1<<20)
	got := c.Data(ctx, TxInfo{Conn: conn}, header(""), bytes.NewReader(body))
	if len(got.Edits) != 1 || got.Edits[0].Value != "0" {
		t.Errorf("headers-only plugin saw body bytes: %+v", got.Edits)
	}

	// Two body readers: each reads the whole body from where it started.
	c2, _ := startChain(t, "mta", spec("c1", "counter", "mta", nil), only, spec("c2", "counter", "mta", nil))
	r := bytes.NewReader(append([]byte("skip"), body...))
	r.Seek(4, io.SeekStart)
	got = c2.Data(ctx, TxInfo{Conn: conn}, header(""), r)
	var counts []string
	for _, e := range got.Edits {
		counts = append(counts, e.Value)
	}
	if strings.Join(counts, ",") != "1048576,0,1048576" {
		t.Errorf("counts %v, want 1048576,0,1048576", counts)
	}
	// ... which a body that cannot rewind cannot give them.
	got = c2.Data(ctx, TxInfo{Conn: conn}, header(""), io.MultiReader(bytes.NewReader(body)))
	if got.Action != Tempfail || got.Reply.Enhanced != "4.3.0" {
		t.Errorf("unseekable body for two readers: %+v", got)
	}
}

func TestPluginLogLineInDaemonLog(t *testing.T) {
	c, buf := startChain(t, "mta", spec("echo", "echo", "mta", nil))
	ci := conn
	ci.SetTLS(tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256})
	c.Rcpt(context.Background(), RcptInfo{Conn: ci, Recipient: "someone@example.test"})
	l := buf.waitLine(t, "echo saw rcpt")
	for _, want := range []string{`"plugin":"echo"`, `"svc":"mta"`, `"level":"info"`, `"rcpt":"someone@example.test"`, `"tls":"TLS1.3"`} {
		if !strings.Contains(l, want) {
			t.Errorf("plugin's line lacks %s: %s", want, l)
		}
	}
}

func TestNilChainContinues(t *testing.T) {
	var c *Chain
	if r := c.Data(context.Background(), TxInfo{}, header(""), nil); r.Action != Continue || c.Has(HookData) {
		t.Errorf("nil chain: %+v", r)
	}
	if r := c.Rcpt(context.Background(), RcptInfo{}); r.Action != Continue {
		t.Errorf("nil chain: %+v", r)
	}
	c.Close()
}

func TestRunByHand(t *testing.T) {
	out, err := exec.Command(bin("example")).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "This binary is a plugin") {
		t.Errorf("run by hand: %v\n%s", err, out)
	}
}

// The disconnect hook reaches a plugin that implements it even when the
// config lists other hooks only: it is not a filter.
func TestDisconnectAlwaysCalled(t *testing.T) {
	c, buf := startChain(t, "mta", Spec{Name: "echo", Path: bin("echo"), Daemon: "mta", Hooks: []string{"rcpt"}})
	if !c.Has(HookDisconnect) {
		t.Fatal("disconnect hook not picked")
	}
	c.Disconnect(context.Background(), ConnInfo{ClientIP: "192.0.2.1", ClientPort: 40701})
	buf.waitLine(t, "echo saw disconnect", `"port":40701`)
}
