package e2e

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
)

// A submission From a domain with a key arrives signed, and the
// signature verifies against the published key on the delivered copy,
// with the Received and Return-Path fields added after signing.
func TestDKIMSignedSubmission(t *testing.T) {
	t.Parallel()
	pub, private, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(private)
	keyFile := filepath.Join(t.TempDir(), "example.test.pem")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	s := StartStackWith(t, StackConfig{Plugins: fmt.Sprintf(`
[[plugins]]
name = "dkim-sign"
daemon = "msa"
hooks = ["data"]
[[plugins.config.keys]]
domain = "example.test"
selector = "mail"
key_file = %q
`, keyFile)})
	body := "From: Demo <demo@example.test>\r\nTo: demo@example.test\r\nSubject: signed\r\n\r\nhello\r\n"
	if _, err := s.Submit(Submission{To: []string{demoUser}, Body: body}); err != nil {
		t.Fatal(err)
	}
	raw := s.WaitForRawMail(demoUser, 1, 10*time.Second)[0]
	verifySigned(t, raw, "mail._domainkey.example.test", "v=DKIM1; k=ed25519; p="+base64.StdEncoding.EncodeToString(pub))
}

// verifySigned verifies the one DKIM signature of msg, as delivered,
// for example.test against record, published at name.
func verifySigned(t *testing.T, msg []byte, name, record string) {
	t.Helper()
	crlf := bytes.ReplaceAll(msg, []byte("\n"), []byte("\r\n")) // the Maildir keeps LF line ends
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(crlf), &dkim.VerifyOptions{
		LookupTXT: func(domain string) ([]string, error) {
			if domain != name {
				return nil, fmt.Errorf("no TXT for %s", domain)
			}
			return []string{record}, nil
		}})
	if err != nil || len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "example.test" {
		t.Fatalf("verification: %v, %+v\n%s", err, vs, msg)
	}
}

// A bounce postline writes (From MAILER-DAEMON@mail.example.test) is
// signed with the key of example.test, the nearest domain with one, and
// the signature verifies on the copy delivered to the sender.
func TestBounceIsDKIMSigned(t *testing.T) {
	t.Parallel()
	pub, private, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(private)
	keyFile := filepath.Join(t.TempDir(), "example.test.pem")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	n := newRelayNet(t)
	s := StartStackWith(t, StackConfig{MTA: fmt.Sprintf("dns_server = %q\nremote_port = %d\n", n.DNS.Addr, n.Port),
		Plugins: fmt.Sprintf("[[plugins]]\nname = \"dkim-sign\"\ndaemon = \"msa\"\nhooks = [\"data\"]\n"+
			"[[plugins.config.keys]]\ndomain = \"example.test\"\nselector = \"mail\"\nkey_file = %q\n", keyFile)})
	submitRelay(t, s, relayMessage("to nowhere", "user@nowhere.test"), "user@nowhere.test")
	raw := s.WaitForRawMail(demoUser, 1, 10*time.Second)[0]
	if !bytes.Contains(raw, []byte("MAILER-DAEMON@mail.example.test")) {
		t.Fatalf("not a bounce:\n%s", raw)
	}
	verifySigned(t, raw, "mail._domainkey.example.test", "v=DKIM1; k=ed25519; p="+base64.StdEncoding.EncodeToString(pub))
}
