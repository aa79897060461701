package mta

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"postline/config"
	"postline/dkimkey"
)

func TestKeyForTakesTheNearestParent(t *testing.T) {
	keys := []config.DKIMKey{{Domain: "example.org", Selector: "a"}, {Domain: "sub.example.net", Selector: "b"}}
	for domain, want := range map[string]string{"mail.example.org": "a", "example.org": "a", "x.sub.example.net": "b", "example.net": "", "org": ""} {
		k, ok := keyFor(keys, domain)
		if got := map[bool]string{true: k.Selector}[ok]; got != want {
			t.Errorf("keyFor(%s) = %q, want %q", domain, got, want)
		}
	}
}

// A bounce from MAILER-DAEMON@mail.example.org is signed for
// example.org, and verifies against that key's record.
func TestSignOwnVerifies(t *testing.T) {
	key, _ := dkimkey.Generate(dkimkey.Ed25519)
	path := filepath.Join(t.TempDir(), "example.org.s1.pem")
	if err := dkimkey.Write(path, key, -1); err != nil {
		t.Fatal(err)
	}
	record, _ := dkimkey.Record(key)
	cfg := &config.Config{Plugins: []config.Plugin{{Name: "dkim-sign", Config: map[string]any{
		"keys": []map[string]any{{"domain": "example.org", "selector": "s1", "key_file": path}}}}}}
	msg := []byte("From: Mail Delivery System <MAILER-DAEMON@mail.example.org>\r\nTo: a@example.net\r\nSubject: Undelivered Mail\r\n\r\nsorry\r\n")
	signed, err := signOwn(cfg, "mail.example.org", msg)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(signed), &dkim.VerifyOptions{LookupTXT: func(name string) ([]string, error) {
		if name != "s1._domainkey.example.org" {
			return nil, errors.New("no record")
		}
		return []string{record}, nil
	}})
	if err != nil || len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "example.org" {
		t.Fatalf("verification: %v %+v", err, vs)
	}
	if same, _ := signOwn(cfg, "example.com", msg); !bytes.Equal(same, msg) {
		t.Error("a message of a domain without a key was changed")
	}
}
