package msa

import (
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"

	"postline/config"
	"postline/queue"
	"postline/users/userstest"
)

// dyingMTA is an MTA that queues each message (when keep is set) and
// then dies before its reply to the end of DATA, the way a crash right
// after the fsync looks to the MSA; on a new connection it answers the
// MSA's question (queue.QueuedParam) from what it kept.
type dyingMTA struct {
	keep   bool
	mu     sync.Mutex
	queued map[string]bool
}

func (m *dyingMTA) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &dyingSession{m: m, conn: c.Conn()}, nil
}

type dyingSession struct {
	m    *dyingMTA
	conn net.Conn
	id   string
}

func (s *dyingSession) Mail(_ string, opts *smtp.MailOptions) error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if asked := opts.Params[queue.QueuedParam]; asked != "" {
		if !s.m.queued[asked] {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 0, 0}, Message: "not queued"}
		}
		return nil
	}
	s.id = opts.Params[queue.IDParam]
	return nil
}

func (s *dyingSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *dyingSession) Reset()                               {}
func (s *dyingSession) Logout() error                        { return nil }

func (s *dyingSession) Data(r io.Reader) error {
	io.Copy(io.Discard, r)
	s.m.mu.Lock()
	s.m.queued[s.id] = s.m.keep
	s.m.mu.Unlock()
	s.conn.Close() // dies before the reply
	return errors.New("crashed")
}

// submitToDyingMTA submits one message through an MSA session whose MTA
// dies after the end of DATA, and returns the MSA's reply.
func submitToDyingMTA(t *testing.T, keep bool) (*smtp.SMTPError, string) {
	mta := &dyingMTA{keep: keep, queued: map[string]bool{}}
	srv := smtp.NewServer(mta)
	srv.MailParams = []string{queue.IDParam, queue.QueuedParam}
	socket := filepath.Join(t.TempDir(), "mta.sock")
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	dial := func() (*smtp.Client, error) {
		conn, err := net.Dial("unix", socket)
		if err != nil {
			return nil, err
		}
		c := smtp.NewClient(conn)
		return c, c.Hello("msa.test")
	}
	cfg := &config.Config{Hostname: "mx.example.test", Domains: []string{"example.test"}}
	b := NewBackend(cfg, userstest.DB(t, "alice@example.test", "pw"), zerolog.Nop(), dial)
	s := &session{b: b, user: "alice@example.test", log: zerolog.Nop(), txlog: zerolog.Nop()}
	if err := s.Mail("alice@example.test", &smtp.MailOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Rcpt("bob@example.org", nil); err != nil {
		t.Fatal(err)
	}
	reply, _ := s.Data(strings.NewReader("Subject: x\r\n\r\nbody\r\n")).(*smtp.SMTPError)
	return reply, s.queueID
}

// The MTA died after the end of DATA: the MSA asks it again and answers
// 250 when the message was queued (a 451 would make the client send it
// twice), 451 when it was not.
func TestMTADiesAfterEndOfData(t *testing.T) {
	reply, id := submitToDyingMTA(t, true)
	if reply == nil || reply.Code != 250 || !strings.Contains(reply.Message, "queued as "+id) {
		t.Errorf("queued: reply %v, want 250 queued as %s", reply, id)
	}
	reply, _ = submitToDyingMTA(t, false)
	if reply == nil || reply.Code != 451 {
		t.Errorf("not queued: reply %v, want 451", reply)
	}
}
