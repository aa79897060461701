package lmtp_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"postline/config"
	"postline/durable"
	"postline/lmtp"
	"postline/mda"
	"postline/users"
)

// mdaServer is the real MDA, serving LMTP in-process on a unix socket.
type mdaServer struct {
	socket   string
	mailRoot string
	be       *mda.Backend
	srv      *smtp.Server
	accepted atomic.Int64 // connections accepted
	writes   atomic.Int64 // the server's writes to them
}

// startMDA serves mda.Backend as postline-mda does, with the one user
// alice@example.test.
func startMDA(t *testing.T) *mdaServer {
	t.Helper()
	// Not t.TempDir(): unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "lmtp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	usersFile := filepath.Join(dir, "users")
	if err := users.Set(usersFile, "alice@example.test", "secret", bcrypt.MinCost); err != nil {
		t.Fatal(err)
	}
	db, err := users.Open(usersFile)
	if err != nil {
		t.Fatal(err)
	}
	m := &mdaServer{socket: filepath.Join(dir, "mda.sock"), mailRoot: filepath.Join(dir, "mail")}
	cfg := &config.Config{Hostname: "mx.example.test", Domains: []string{"example.test"},
		MDA: config.MDA{MailRoot: m.mailRoot}}
	be := &mda.Backend{
		Mailboxes: &mda.Mailboxes{Config: cfg, Users: db},
		Maildir:   &mda.Maildir{FS: durable.Rooted{Root: m.mailRoot}, Hostname: cfg.Hostname},
		SpoolDir:  dir,
		Log:       zerolog.Nop(),
	}
	m.be = be
	m.serve(t)
	t.Cleanup(func() { m.srv.Close() })
	return m
}

// serve starts an LMTP server (again: as a restarted postline-mda) on
// the socket, counting the connections it accepts.
func (m *mdaServer) serve(t *testing.T) {
	os.Remove(m.socket)
	ln, err := net.Listen("unix", m.socket)
	if err != nil {
		t.Fatal(err)
	}
	m.srv = mda.NewServer(m.be, "mx.example.test")
	go m.srv.Serve(&countingListener{Listener: ln, n: &m.accepted, writes: &m.writes})
}

type countingListener struct {
	net.Listener
	n, writes *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
		c = &countingConn{Conn: c, writes: l.writes}
	}
	return c, err
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// messages returns the contents of the files in new/ of a user's Maildir.
func (m *mdaServer) messages(t *testing.T, user string) []string {
	t.Helper()
	dir := filepath.Join(m.mailRoot, "example.test", user, "new")
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(data))
	}
	return out
}

func deliver(t *testing.T, socket string, body string, rcpts ...string) (lmtp.Result, error) {
	t.Helper()
	return deliverInto(t, socket, "", body, rcpts...)
}

func deliverInto(t *testing.T, socket, folder, body string, rcpts ...string) (lmtp.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return lmtp.Deliver(ctx, socket, "mta.example.test", lmtp.Message{
		QueueID: "06K040MXZS16B70B", From: "sender@example.org", Recipients: rcpts,
		Body8Bit: true, SMTPUTF8: true, Folder: folder, Data: strings.NewReader(body)})
}

// A filter's folder reaches the MDA, which files the copy there.
func TestDeliverIntoFolder(t *testing.T) {
	m := startMDA(t)
	res, err := deliverInto(t, m.socket, "Junk", "Subject: spam\r\n\r\nbuy\r\n", "alice@example.test")
	if err != nil || res["alice@example.test"] != nil {
		t.Fatalf("result %v, %v", res, err)
	}
	if got := m.messages(t, "alice/.Junk"); len(got) != 1 || got[0] != "Subject: spam\n\nbuy\n" {
		t.Errorf(".Junk holds %q", got)
	}
	if got := m.messages(t, "alice"); len(got) != 0 {
		t.Errorf("the inbox holds %q", got)
	}
}

func TestDeliverToRealMDA(t *testing.T) {
	m := startMDA(t)
	body := "Subject: hi\r\n\r\nline 1\r\n.leading dot\r\nbare\rCR\r\n"
	res, err := deliver(t, m.socket, body, "Alice@example.test", "bob@example.test")
	if err != nil {
		t.Fatal(err)
	}
	if serr, ok := res["Alice@example.test"]; !ok || serr != nil {
		t.Errorf("known user: result %v (present %v), want nil", serr, ok)
	}
	if serr := res["bob@example.test"]; serr == nil || serr.Code != 550 || serr.EnhancedCode != (smtp.EnhancedCode{5, 1, 1}) {
		t.Errorf("unknown user: result %v, want 550 5.1.1", serr)
	}
	if len(res) != 2 {
		t.Errorf("result has %d entries, want 2: %v", len(res), res)
	}
	// MAIL, both RCPTs and DATA went as one group (PIPELINING), answered
	// in one write: greeting, LHLO, the group, one status per recipient.
	if n := m.writes.Load(); n != 4 {
		t.Errorf("the MDA wrote %d times, want 4", n)
	}
	got := m.messages(t, "alice")
	// The MDA holds to the SMTP servers' line-end rule: a stray CR becomes a space.
	want := "Subject: hi\n\nline 1\n.leading dot\nbare CR\n"
	if len(got) != 1 || got[0] != want {
		t.Errorf("alice's Maildir has %q, want [%q]", got, want)
	}
}

// With every recipient refused there is no DATA and no error: each
// refusal is a per-recipient result the MTA records.
func TestDeliverAllRefused(t *testing.T) {
	m := startMDA(t)
	res, err := deliver(t, m.socket, "x\r\n", "bob@example.test", "carol@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if res["bob@example.test"] == nil || res["bob@example.test"].Code != 550 ||
		res["carol@example.org"] == nil || res["carol@example.org"].EnhancedCode != (smtp.EnhancedCode{5, 1, 2}) {
		t.Errorf("results %v, want 550 5.1.1 and 550 5.1.2", res)
	}
	if _, err := os.Stat(m.mailRoot); !os.IsNotExist(err) {
		t.Errorf("mail_root created although nothing was delivered (%v)", err)
	}
}

// A recipient named twice gets one copy (the MDA remembers the first
// result), not two.
func TestDeliverRepeatedRecipient(t *testing.T) {
	m := startMDA(t)
	res, err := deliver(t, m.socket, "x\r\n", "alice@example.test", "alice@example.test")
	if err != nil || res["alice@example.test"] != nil {
		t.Fatalf("Deliver = %v, %v", res, err)
	}
	if got := m.messages(t, "alice"); len(got) != 1 {
		t.Errorf("alice got %d copies, want 1", len(got))
	}
}

// No MDA listening is a transport error: nothing may count as delivered.
func TestDeliverNoServer(t *testing.T) {
	res, err := deliver(t, filepath.Join(t.TempDir(), "absent.sock"), "x\r\n", "alice@example.test")
	if err == nil || res != nil {
		t.Errorf("Deliver to a missing socket = %v, %v; want an error and no result", res, err)
	}
}
