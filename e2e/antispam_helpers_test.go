package e2e

// What TestAntispam needs around the stack: the bundled antispam plugin
// built beside the daemons, an internet client that dials the MTA from a
// chosen loopback address (the IP that SPF and the DNSBLs judge), and a
// look into the Maildir by Subject.

import (
	"bytes"
	"net"
	"net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// internetMail is one message sent to the MTA's public port by a client
// at IP, as another domain's server would send it.
type internetMail struct {
	IP, Helo, From string
	To             []string
	Data           string
}

// sendFromIP sends m and returns the reply text to the end of DATA, or
// the first error (an *smtp.SMTPError for a refusal).
func sendFromIP(t *testing.T, s *Stack, m internetMail) (string, error) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(m.IP)}}
	conn, err := d.Dial("tcp", s.MTA)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", s.MTA, m.IP, err)
	}
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello(m.Helo); err != nil {
		return "", err
	}
	text, err := sendMail(c, m.From, m.To, m.Data)
	if err == nil {
		c.Quit()
	}
	return text, err
}

// deliveredMsg is one message read back from a Maildir folder.
type deliveredMsg struct {
	Raw    []byte
	Header mail.Header // continuation lines unfolded
}

// field returns the one field name of the message with its folding
// whitespace collapsed, failing the test unless there is exactly one.
func (m deliveredMsg) field(t *testing.T, name string) string {
	t.Helper()
	vs := m.Header[textproto.CanonicalMIMEHeaderKey(name)]
	if len(vs) != 1 {
		t.Fatalf("%d %s fields, want 1:\n%s", len(vs), name, m.Raw)
	}
	return strings.Join(strings.Fields(vs[0]), " ")
}

// bySubject returns the message in dir whose Subject is subject.
func bySubject(t *testing.T, dir, subject string) (deliveredMsg, bool) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s does not parse: %v\n%s", e.Name(), err, raw)
		}
		if m.Header.Get("Subject") == subject {
			return deliveredMsg{Raw: raw, Header: m.Header}, true
		}
	}
	return deliveredMsg{}, false
}

// waitSubject waits until dir holds the message whose Subject is subject.
func waitSubject(t *testing.T, dir, subject string) deliveredMsg {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m, ok := bySubject(t, dir, subject); ok {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("no message %q in %s", subject, dir)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
