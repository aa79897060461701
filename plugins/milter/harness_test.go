package main

// The test harness: scripted milters served by go-milter's own server on
// 127.0.0.1, raw TCP listeners that misbehave, and the bridge driven
// through sdk.Direct as the host drives a plugin (same conversions, no
// process), so the tests assert on the *pb.Verdict the host would get.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/d--j/go-milter"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"postline/plugins/host"
	"postline/plugins/pb"
	"postline/plugins/sdk"
)

// pluginBin is the real plugin binary, built once by TestMain for the
// end-to-end tests through plugins/host.
var pluginBin string

func TestMain(m *testing.M) {
	// go-milter logs its warnings (a milter that breaks the connection on
	// purpose, say) through the log package: keep the test output clean.
	milter.LogWarning = func(string, ...any) {}
	dir, err := os.MkdirTemp("", "postline-milter-plugin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	cmd := exec.Command("go", "build", "-o", dir+"/", "./plugins/milter")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the milter plugin: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	pluginBin = filepath.Join(dir, "milter")
	code := m.Run()
	host.Cleanup()
	os.RemoveAll(dir)
	os.Exit(code)
}

// script says how a scripted milter answers each event; a nil function
// continues.
type script struct {
	connect func(host, family string, port uint16, addr string, m milter.Modifier) (*milter.Response, error)
	helo    func(name string, m milter.Modifier) (*milter.Response, error)
	mail    func(from string, m milter.Modifier) (*milter.Response, error)
	rcpt    func(to string, m milter.Modifier) (*milter.Response, error)
	data    func(m milter.Modifier) (*milter.Response, error)
	header  func(name, value string, m milter.Modifier) (*milter.Response, error)
	eoh     func(m milter.Modifier) (*milter.Response, error)
	body    func(chunk []byte, m milter.Modifier) (*milter.Response, error)
	eom     func(m milter.Modifier) (*milter.Response, error)
}

// testMilter is a scripted milter listening on 127.0.0.1. It records the
// events it gets, in order, over all its connections.
type testMilter struct {
	spec     string // "inet:127.0.0.1:PORT"
	sc       script
	sessions atomic.Int32 // milter connections negotiated
	cleanups atomic.Int32 // milter connections ended
	bodySize atomic.Int64 // body bytes received, all messages
	mu       sync.Mutex
	log      []string
}

// allActions are the modifications the scripted milters may ask for.
const allActions = milter.OptAddHeader | milter.OptChangeHeader | milter.OptAddRcpt | milter.OptRemoveRcpt |
	milter.OptChangeFrom | milter.OptQuarantine | milter.OptChangeBody

// startMilter serves sc until the test ends. opts add to the default
// negotiation: every modification action, no protocol options.
func startMilter(t testing.TB, sc script, opts ...milter.Option) *testMilter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tm := &testMilter{spec: "inet:" + ln.Addr().String(), sc: sc}
	all := append([]milter.Option{
		milter.WithMilter(func() milter.Milter {
			tm.sessions.Add(1)
			return &scripted{tm: tm}
		}),
		milter.WithAction(allActions),
	}, opts...)
	srv := milter.NewServer(all...)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return tm
}

func (tm *testMilter) record(format string, args ...any) {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	tm.log = append(tm.log, fmt.Sprintf(format, args...))
}

// events returns what the milter got so far.
func (tm *testMilter) events() []string {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return append([]string(nil), tm.log...)
}

// waitCleanups waits up to 5 s until n milter connections have ended:
// the server sees the bridge's QUIT or close after the hook returned.
func (tm *testMilter) waitCleanups(t testing.TB, n int32) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for tm.cleanups.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d milter connections ended, want %d", tm.cleanups.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// scripted is one connection of a testMilter.
type scripted struct{ tm *testMilter }

func orContinue(r *milter.Response, err error) (*milter.Response, error) {
	if r == nil && err == nil {
		return milter.RespContinue, nil
	}
	return r, err
}

func (s *scripted) NewConnection(milter.Modifier) error { return nil }

func (s *scripted) Connect(host, family string, port uint16, addr string, m milter.Modifier) (*milter.Response, error) {
	s.tm.record("connect %s %s %d %s", host, family, port, addr)
	if s.tm.sc.connect != nil {
		return orContinue(s.tm.sc.connect(host, family, port, addr, m))
	}
	return milter.RespContinue, nil
}

func (s *scripted) Helo(name string, m milter.Modifier) (*milter.Response, error) {
	s.tm.record("helo %s", name)
	if s.tm.sc.helo != nil {
		return orContinue(s.tm.sc.helo(name, m))
	}
	return milter.RespContinue, nil
}

func (s *scripted) MailFrom(from, _ string, m milter.Modifier) (*milter.Response, error) {
	s.tm.record("mail <%s>", from)
	if s.tm.sc.mail != nil {
		return orContinue(s.tm.sc.mail(from, m))
	}
	return milter.RespContinue, nil
}

func (s *scripted) RcptTo(to, _ string, m milter.Modifier) (*milter.Response, error) {
	s.tm.record("rcpt <%s>", to)
	if s.tm.sc.rcpt != nil {
		return orContinue(s.tm.sc.rcpt(to, m))
	}
	return milter.RespContinue, nil
}

func (s *scripted) Data(m milter.Modifier) (*milter.Response, error) {
	s.tm.record("data")
	if s.tm.sc.data != nil {
		return orContinue(s.tm.sc.data(m))
	}
	return milter.RespContinue, nil
}

func (s *scripted) Header(name, value string, m milter.Modifier) (*milter.Response, error) {
	s.tm.record("header %s=%q", name, value)
	if s.tm.sc.header != nil {
		return orContinue(s.tm.sc.header(name, value, m))
	}
	return milter.RespContinue, nil
}

func (s *scripted) Headers(m milter.Modifier) (*milter.Response, error) {
	s.tm.record("eoh")
	if s.tm.sc.eoh != nil {
		return orContinue(s.tm.sc.eoh(m))
	}
	return milter.RespContinue, nil
}

func (s *scripted) BodyChunk(chunk []byte, m milter.Modifier) (*milter.Response, error) {
	s.tm.bodySize.Add(int64(len(chunk)))
	s.tm.record("body %d", len(chunk))
	if s.tm.sc.body != nil {
		return orContinue(s.tm.sc.body(chunk, m))
	}
	return milter.RespContinue, nil
}

func (s *scripted) EndOfMessage(m milter.Modifier) (*milter.Response, error) {
	s.tm.record("eom")
	if s.tm.sc.eom != nil {
		return orContinue(s.tm.sc.eom(m))
	}
	return milter.RespAccept, nil
}

func (s *scripted) Abort(milter.Modifier) error {
	s.tm.record("abort")
	return nil
}

func (s *scripted) Unknown(cmd string, _ milter.Modifier) (*milter.Response, error) {
	s.tm.record("unknown %s", cmd)
	return milter.RespContinue, nil
}

func (s *scripted) Cleanup(milter.Modifier) { s.tm.cleanups.Add(1) }

// rawListener serves each TCP connection with serve until the test ends:
// a "milter" that does not speak the protocol.
func rawListener(t testing.TB, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return "inet:" + ln.Addr().String()
}

// deadEndpoint is an address nothing listens on.
func deadEndpoint(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "inet:" + addr
}

// harness is one bridge, configured as the host configures a plugin.
type harness struct {
	t  testing.TB
	b  *bridge
	cl pb.FilterClient
}

// cfgFor is a config for endpoints with generous timeouts (the race
// detector slows everything down); extra keys override.
func cfgFor(endpoints []string, extra ...any) map[string]any {
	list := make([]any, len(endpoints))
	for i, e := range endpoints {
		list[i] = e
	}
	cfg := map[string]any{"milters": list, "connect_timeout": "2s", "command_timeout": "5s"}
	for i := 0; i+1 < len(extra); i += 2 {
		cfg[extra[i].(string)] = extra[i+1]
	}
	return cfg
}

// specs lists the milters' endpoints.
func specs(ms ...*testMilter) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.spec)
	}
	return out
}

func newHarness(t testing.TB, cfg map[string]any) *harness {
	t.Helper()
	b := &bridge{}
	h := &harness{t: t, b: b, cl: sdk.Direct(b)}
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := h.cl.Configure(context.Background(), &pb.ConfigureRequest{Name: "milter", Daemon: "mta",
		Hostname: "mx.example.test", ConfigJson: js})
	if err != nil {
		t.Fatalf("Configure: %v", err)
	}
	if !resp.GetDataReplacesBody() {
		t.Errorf("Configure: data_replaces_body not set")
	}
	t.Cleanup(func() {
		// Sessions a test left (no data hook) are closed as the idle
		// eviction would.
		b.conns.mu.Lock()
		left := b.conns.conns
		b.conns.conns = nil
		b.conns.mu.Unlock()
		for _, c := range left {
			closeLocked(c)
		}
	})
	return h
}

// client is an SMTP client's session as the host describes it.
func client(port int) *pb.Connection {
	return &pb.Connection{Daemon: "mta", ClientIp: "192.0.2.1", ClientPort: uint32(port), ReverseDns: "client.example",
		Helo: "client.example", Protocol: "ESMTP", QueueId: "4XyZ1234"}
}

func (h *harness) connect(c *pb.Connection) (*pb.Verdict, error) {
	return h.cl.Connect(context.Background(), &pb.ConnectRequest{Conn: c})
}

func (h *harness) mail(c *pb.Connection, sender string) (*pb.Verdict, error) {
	return h.cl.Mail(context.Background(), &pb.MailRequest{Conn: c, Sender: sender})
}

func (h *harness) rcpt(c *pb.Connection, sender, rcpt string) (*pb.Verdict, error) {
	return h.cl.Rcpt(context.Background(), &pb.RcptRequest{Conn: c, Sender: sender, Recipient: rcpt})
}

// data runs the data hook on msg (header, empty line, body), the body
// in the host's 64 KiB chunks.
func (h *harness) data(c *pb.Connection, sender string, rcpts []string, msg string) (*pb.Verdict, error) {
	head, body, ok := strings.Cut(msg, "\r\n\r\n")
	if !ok {
		h.t.Fatalf("test message without an empty line: %q", msg)
	}
	s, err := h.cl.Data(context.Background())
	if err != nil {
		return nil, err
	}
	_ = s.Send(&pb.DataChunk{Chunk: &pb.DataChunk_Start{Start: &pb.DataStart{Conn: c, Sender: sender,
		Recipients: rcpts, Header: []byte(head + "\r\n\r\n"), Size: int64(len(msg))}}})
	for len(body) > 0 {
		n := min(len(body), 64<<10)
		if err := s.Send(&pb.DataChunk{Chunk: &pb.DataChunk_Body{Body: []byte(body[:n])}}); err != nil {
			break // the hook answered before the end
		}
		body = body[n:]
	}
	return s.CloseAndRecv()
}

// must fails the test on err.
func (h *harness) must(v *pb.Verdict, err error) *pb.Verdict {
	h.t.Helper()
	if err != nil {
		h.t.Fatalf("hook failed: %v", err)
	}
	return v
}

// The verdicts the tests expect.
func cont(edits ...*pb.HeaderEdit) *pb.Verdict { return &pb.Verdict{HeaderEdits: edits} }

func reject(code uint32, enh, text string) *pb.Verdict {
	return &pb.Verdict{Action: pb.Verdict_REJECT, Reply: &pb.Reply{Code: code, EnhancedCode: enh, Text: text}}
}

func tempfail(code uint32, enh, text string) *pb.Verdict {
	return &pb.Verdict{Action: pb.Verdict_TEMPFAIL, Reply: &pb.Reply{Code: code, EnhancedCode: enh, Text: text}}
}

func discard() *pb.Verdict { return &pb.Verdict{Action: pb.Verdict_DISCARD} }

func edit(op pb.HeaderEdit_Op, name, value string, index uint32) *pb.HeaderEdit {
	return &pb.HeaderEdit{Op: op, Name: name, Value: value, Index: index}
}

// stdReject and stdTempfail are SMFIR_REJECT's and SMFIR_TEMPFAIL's.
var (
	stdReject   = reject(550, "5.7.1", "Command rejected")
	stdTempfail = tempfail(451, "4.7.1", "Service unavailable - try again later")
)

func checkVerdict(t testing.TB, what string, got, want *pb.Verdict) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Errorf("%s:\n got  {%v}\n want {%v}", what, prototext.MarshalOptions{}.Format(got), prototext.MarshalOptions{}.Format(want))
	}
}

func checkEvents(t testing.TB, tm *testMilter, want ...string) {
	t.Helper()
	got := tm.events()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("milter got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// testMsg is a small message with a folded field and a body.
const testMsg = "Received: from client.example (client.example [192.0.2.1])\r\n" +
	"\tby mx.example.test; Mon, 1 Jan 2024 00:00:00 +0000\r\n" +
	"From: A <a@example.test>\r\n" +
	"Subject: hello\r\n" +
	"\r\n" +
	"Hi.\r\n"

// testMsgEvents is what a milter without SMFIP_HDR_LEADSPC gets for testMsg
// from DATA to the end of message.
var testMsgEvents = []string{
	"data",
	`header Received="from client.example (client.example [192.0.2.1])\n\tby mx.example.test; Mon, 1 Jan 2024 00:00:00 +0000"`,
	`header From="A <a@example.test>"`,
	`header Subject="hello"`,
	"eoh",
	"body 5",
	"eom",
}

// envelope is the connect, HELO, MAIL and RCPT events for client(port)
// with sender and rcpts.
func envelope(port int, sender string, rcpts ...string) []string {
	ev := []string{fmt.Sprintf("connect client.example tcp4 %d 192.0.2.1", port), "helo client.example", "mail <" + sender + ">"}
	for _, r := range rcpts {
		ev = append(ev, "rcpt <"+r+">")
	}
	return ev
}

func concat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// withCode answers with a milter's own SMTP reply (SMFIR_REPLYCODE).
func withCode(code uint16, reason string) *milter.Response {
	r, err := milter.RejectWithCodeAndReason(code, reason)
	if err != nil {
		panic(err)
	}
	return r
}
