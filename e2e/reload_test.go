package e2e

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"postline/certs"
)

// SIGHUP reloads the config without dropping a connection: a session
// opened before goes on, new TLS handshakes get the renewed certificate,
// a new local domain takes mail, a new plugin runs; a config with a
// mistake is refused and the stack keeps serving with the old one.
func TestReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := certs.EnsureSelfSigned(certFile, keyFile, "mail.example.test"); err != nil {
		t.Fatal(err)
	}
	// A [tls] table among the top-level lines: the next table starts after it.
	extra := StackConfig{TopLevel: fmt.Sprintf("[tls]\ncert = %q\nkey = %q\n", certFile, keyFile)}
	s := StartStackWith(t, extra)
	oldCert := serverCert(t, s.Submissions)

	open, err := smtp.DialStartTLS(s.Submission, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if err := open.Auth(sasl.NewPlainClient("", demoUser, demoPassword)); err != nil {
		t.Fatal(err)
	}

	os.Remove(certFile)
	os.Remove(keyFile)
	if err := certs.EnsureSelfSigned(certFile, keyFile, "mail.example.test"); err != nil {
		t.Fatal(err)
	}
	extra.Domains = `["example.test", "other.example", "new.example"]`
	extra.Plugins = "[[plugins]]\nname = \"example\"\ndaemon = \"mta\"\nhooks = [\"data\"]\n[plugins.config]\nword = \"lottery\"\n"
	s.writeConfig(extra)
	s.Postline("pw-of-someone\n", "user", "add", "someone@new.example")
	s.cmd.Process.Signal(syscall.SIGHUP)
	s.WaitLog(`"message":"config reloaded"`, 3, 20*time.Second)

	if _, err := sendMail(open, demoUser, []string{demoUser}, "Subject: sent on a session opened before the reload\r\n\r\nhi\r\n"); err != nil {
		t.Errorf("the session opened before the reload: %v", err)
	}
	if newCert := serverCert(t, s.Submissions); bytes.Equal(newCert, oldCert) {
		t.Error("a new TLS handshake still gets the old certificate")
	}
	if err := sendToMTA(s.MTA, "x@example.org", "someone@new.example", "Subject: hello\r\n\r\nhi\r\n"); err != nil {
		t.Errorf("mail to the new local domain: %v", err)
	}
	err = sendToMTA(s.MTA, "x@example.org", demoUser, "Subject: you won the lottery\r\n\r\nhi\r\n")
	var serr *smtp.SMTPError
	if !errors.As(err, &serr) || serr.Code != 550 {
		t.Errorf("the plugin added by the reload did not refuse: %v", err)
	}

	os.WriteFile(s.Config, []byte("hostname = \"mail.example.test\"\nnot valid toml ["), 0o600)
	s.cmd.Process.Signal(syscall.SIGHUP)
	s.WaitLog(`config not reloaded: fix it and send SIGHUP again`, 1, 10*time.Second)
	if err := sendToMTA(s.MTA, "x@example.org", "someone@new.example", "Subject: still\r\n\r\nhi\r\n"); err != nil {
		t.Errorf("after a refused reload: %v", err)
	}
	s.WaitForMail("someone@new.example", 2, 10*time.Second)
}

// serverCert returns the certificate an implicit-TLS listener presents.
func serverCert(t *testing.T, addr string) []byte {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Raw
}

// sendToMTA sends one message to the MTA's public listener, as a host
// of the internet would.
func sendToMTA(addr, from, to, body string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.example.org"); err != nil {
		return err
	}
	_, err = sendMail(c, from, []string{to}, body)
	return err
}
