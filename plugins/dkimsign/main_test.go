package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/rs/zerolog"

	"postline/plugins/host"
)

// writeKey writes a private key as PKCS#8 PEM and returns its path and
// the TXT record that publishes its public half.
func writeKey(t *testing.T, private any, public any, algo string) (string, string) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(private)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.pem")
	os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	var pub []byte
	if algo == "ed25519" {
		pub = public.(ed25519.PublicKey)
	} else {
		pub, _ = x509.MarshalPKIXPublicKey(public)
	}
	return path, "v=DKIM1; k=" + algo + "; p=" + base64.StdEncoding.EncodeToString(pub)
}

const message = "From: Alice <alice@Example.Org>\r\nTo: bob@example.net\r\nSubject: hello\r\n" +
	"Message-ID: <1@example.org>\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\n\r\n" +
	"Hello Bob,  \r\nsee you.\r\n\r\n\r\n"

// pluginBin is the built plugin, run the way the MSA runs it.
var pluginBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "postline-dkim-sign-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	pluginBin = filepath.Join(dir, "postline-plugin-dkim-sign")
	if out, err := exec.Command("go", "build", "-o", pluginBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the plugin: %v\n%s", err, out)
		os.Exit(2)
	}
	code := m.Run()
	host.Cleanup()
	os.RemoveAll(dir)
	os.Exit(code)
}

// startSigner runs the built plugin in an MSA chain with a key for
// example.org at path.
func startSigner(t *testing.T, path string) *host.Chain {
	t.Helper()
	cfg := map[string]any{"keys": []any{map[string]any{"domain": "example.org", "selector": "mail", "key_file": path}}}
	spec := host.Spec{Name: "dkim-sign", Path: pluginBin, Daemon: "msa", Config: cfg}
	c, err := host.Start(context.Background(), []host.Spec{spec}, host.Options{Daemon: "msa", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// signMessage passes msg through the chain's data hook and returns it
// with the edits applied, as the MSA passes it on.
func signMessage(t *testing.T, c *host.Chain, msg string) []byte {
	t.Helper()
	f, err := c.FilterMessage(context.Background(), host.TxInfo{}, strings.NewReader(msg), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out, err := io.ReadAll(f.Message)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A signed message verifies against the published key, with RSA and
// Ed25519, and still after a relay refolds and re-spaces it; a message
// From another domain is left unsigned; a changed body fails.
func TestSignVerifies(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	for _, tt := range []struct {
		algo         string
		private, pub any
	}{{"rsa", rsaKey, &rsaKey.PublicKey}, {"ed25519", edKey, edPub}} {
		path, record := writeKey(t, tt.private, tt.pub, tt.algo)
		f := startSigner(t, path)
		lookup := func(domain string) ([]string, error) {
			if domain != "mail._domainkey.example.org" {
				t.Errorf("looked up %s", domain)
			}
			return []string{record}, nil
		}
		signed := signMessage(t, f, message)
		verify := func(msg []byte) error {
			vs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{LookupTXT: lookup})
			if err != nil || len(vs) != 1 {
				t.Fatalf("%s: %v, %d signatures", tt.algo, err, len(vs))
			}
			return vs[0].Err
		}
		if err := verify(signed); err != nil {
			t.Errorf("%s: signed message does not verify: %v\n%s", tt.algo, err, signed)
		}
		respaced := bytes.Replace(signed, []byte("Subject: hello"), []byte("Subject:   hello"), 1)
		if err := verify(append([]byte("Received: from relay\r\n"), respaced...)); err != nil {
			t.Errorf("%s: after a relay's changes: %v", tt.algo, err)
		}
		if err := verify(bytes.Replace(signed, []byte("see you"), []byte("see me"), 1)); err == nil {
			t.Errorf("%s: a changed body still verifies", tt.algo)
		}
		other := signMessage(t, f, strings.Replace(message, "alice@Example.Org", "alice@other.example", 1))
		if bytes.Contains(other, []byte("DKIM-Signature")) {
			t.Errorf("%s: signed mail from a domain without a key", tt.algo)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		cfg  map[string]any
		want string
	}{
		{map[string]any{}, "add one [[plugins.config.keys]] table"},
		{map[string]any{"keys": []any{map[string]any{"domain": "example.org", "selector": "mail", "key_file": "rel.pem"}}}, "absolute path"},
		{map[string]any{"keys": []any{map[string]any{"domain": "example.org", "key_file": "/x"}}}, "selector:"},
		{map[string]any{"keys": []any{map[string]any{"domain": "example.org", "selector": "s", "key_file": "/nonexistent.pem"}}}, "key_file:"},
		{map[string]any{"keys": []any{}, "selectr": "x"}, `"selectr": unknown key`},
	} {
		err := (&filter{}).Configure(tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: %v, want %q", tt.cfg, err, tt.want)
		}
	}
}
