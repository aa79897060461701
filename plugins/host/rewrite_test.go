package host

import (
	"context"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// A plugin's new body reaches the caller and the plugins after it; its
// indexed header edits and envelope changes come back in the Result.
func TestFilterMessageReplacedBody(t *testing.T) {
	c, _ := startChain(t, "mta",
		spec("rewriter", "rewriter", "mta", nil),
		Spec{Name: "counter", Path: bin("counter"), Daemon: "mta", Order: 1})
	msg := "From: a@example.test\r\nSubject: old\r\nX-New-Sender: <bounces@example.test>\r\n" +
		"X-Add-Rcpt: c@example.test\r\nX-Del-Rcpt: B@example.test\r\n\r\nhello\r\n"
	tx := TxInfo{Conn: conn, Sender: "a@example.test", Recipients: []string{"b@example.test"}}
	f, err := c.FilterMessage(context.Background(), tx, strings.NewReader(msg), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, _ := io.ReadAll(f.Message)
	body := "REWRITTEN\r\nHELLO\r\n"
	want := "From: a@example.test\r\nX-Inserted: yes\r\nSubject: changed\r\nX-New-Sender: <bounces@example.test>\r\n" +
		"X-Add-Rcpt: c@example.test\r\nX-Del-Rcpt: B@example.test\r\nX-Body-Bytes: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	if string(got) != want {
		t.Errorf("message:\n%q\nwant\n%q", got, want)
	}
	if f.Result.BodyBy != "rewriter" {
		t.Errorf("BodyBy = %q", f.Result.BodyBy)
	}
	sender, rcpts := ApplyEnvelope(f.Result.Envelope, tx.Sender, tx.Recipients)
	if sender != "bounces@example.test" || !reflect.DeepEqual(rcpts, []string{"c@example.test"}) {
		t.Errorf("envelope: %q %q from %+v", sender, rcpts, f.Result.Envelope)
	}
}

// Chain.Data without a sink drops a new body: the Result says nothing replaced it.
func TestDataDropsNewBodyWithoutSink(t *testing.T) {
	c, _ := startChain(t, "mta", spec("rewriter", "rewriter", "mta", nil))
	res := c.Data(context.Background(), TxInfo{Conn: conn}, header(""), strings.NewReader("x\r\n"))
	if res.BodyBy != "" || res.Action != Continue || len(res.Edits) != 2 {
		t.Errorf("got %+v", res)
	}
}

// A 50 MB body replaced by a plugin passes in bounded memory both ways.
func TestLargeBodyReplaced(t *testing.T) {
	const size = 50 << 20
	c, _ := startChain(t, "mta", spec("rewriter", "rewriter", "mta", nil))
	pid := strconv.Itoa(pidOf(t, c, "rewriter"))
	hostBefore, _ := vmHWM("self")
	msg := io.MultiReader(strings.NewReader("Subject: big\r\n\r\n"), io.LimitReader(pattern{}, size))
	f, err := c.FilterMessage(context.Background(), TxInfo{Conn: conn}, msg, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := io.Copy(io.Discard, f.Message)
	if err != nil || n < size {
		t.Fatalf("read %d bytes, %v", n, err)
	}
	hostAfter, err1 := vmHWM("self")
	plugAfter, err2 := vmHWM(pid)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	t.Logf("peak RSS: plugin %d KiB, host +%d KiB", plugAfter, hostAfter-hostBefore)
	if plugAfter > 40<<10 || hostAfter-hostBefore > 40<<10 {
		t.Errorf("peak RSS grew as if the body were held: plugin %d KiB, host +%d KiB", plugAfter, hostAfter-hostBefore)
	}
}

// A deliver plugin that reads the body gets it streamed, each plugin from
// its start; one that does not is called without it.
func TestDeliverBody(t *testing.T) {
	c, _ := startChain(t, "mda",
		spec("first", "counter", "mda", nil),
		Spec{Name: "second", Path: bin("counter"), Daemon: "mda", Order: 1},
		Spec{Name: "echo", Path: bin("echo"), Daemon: "mda", Order: 2})
	if !c.WantsDeliverBody() {
		t.Fatal("WantsDeliverBody = false")
	}
	const body = "hello\nworld\n"
	got := c.Deliver(context.Background(), DeliveryInfo{Recipient: "b@example.test", Size: 40}, header("continue"),
		func() io.Reader { return strings.NewReader(body) })
	n := strconv.Itoa(len(body))
	want := []HeaderEdit{{Append, "X-Body-Bytes", n, 0}, {Append, "X-Body-Bytes", n, 0}, {Prepend, "X-Echo", "", 0}}
	if !reflect.DeepEqual(got.Edits, want) {
		t.Errorf("edits %+v, want %+v", got.Edits, want)
	}
}
