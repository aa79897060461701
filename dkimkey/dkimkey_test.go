package dkimkey

import (
	"bytes"
	"crypto"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
)

// A key made, written and read back signs mail that a verifier accepts
// with the record Record publishes, for both algorithms.
func TestKeySignsWhatItsRecordVerifies(t *testing.T) {
	for _, alg := range []string{RSA, Ed25519} {
		key, err := Generate(alg)
		if err != nil {
			t.Fatal(err)
		}
		path := Path(t.TempDir(), "example.org", "s1")
		if err := Write(path, key, -1); err != nil {
			t.Fatal(err)
		}
		if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
			t.Errorf("%s: mode %v, want 0640", alg, st.Mode().Perm())
		}
		back, err := Read(path)
		if err != nil {
			t.Fatal(err)
		}
		record, err := Record(back)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(record, "v=DKIM1; k="+alg+"; p=") {
			t.Errorf("record %q", record)
		}
		verify(t, back, record)
		if err := Matches(record, key); err != nil {
			t.Errorf("%s: Matches(own record) = %v", alg, err)
		}
	}
}

func verify(t *testing.T, key crypto.Signer, record string) {
	t.Helper()
	msg := "From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nbody\r\n"
	var signed bytes.Buffer
	err := dkim.Sign(&signed, strings.NewReader(msg), &dkim.SignOptions{Domain: "example.org", Selector: "s1", Signer: key})
	if err != nil {
		t.Fatal(err)
	}
	verifications, err := dkim.VerifyWithOptions(&signed, &dkim.VerifyOptions{
		LookupTXT: func(domain string) ([]string, error) {
			if domain != "s1._domainkey.example.org" {
				return nil, errors.New("no such record")
			}
			return []string{record}, nil
		},
	})
	if err != nil || len(verifications) != 1 || verifications[0].Err != nil {
		t.Fatalf("verification: %v %+v", err, verifications)
	}
}

func TestWriteNeverReplaces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.pem")
	os.WriteFile(path, []byte("old"), 0o600)
	key, _ := Generate(Ed25519)
	if err := Write(path, key, -1); err == nil {
		t.Fatal("Write replaced an existing key file")
	}
	if data, _ := os.ReadFile(path); string(data) != "old" {
		t.Errorf("the existing file became %q", data)
	}
}

// Matches says what is wrong with a published record.
func TestMatchesNamesTheProblem(t *testing.T) {
	key, _ := Generate(Ed25519)
	other, _ := Generate(Ed25519)
	rsaKey, _ := Generate(RSA)
	own, _ := Record(key)
	otherRecord, _ := Record(other)
	rsaRecord, _ := Record(rsaKey)
	for _, c := range []struct{ txt, want string }{
		{otherRecord, "another key"},
		{"v=DKIM1; k=ed25519; p=", "revoked"},
		{rsaRecord, "k=rsa"},
		{"v=DKIM2; " + own[len("v=DKIM1; "):], "v=DKIM2"},
		{"v=DKIM1; k=ed25519; p=!!!", "base64"},
	} {
		err := Matches(c.txt, key)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Matches(%.40q) = %v, want an error saying %q", c.txt, err, c.want)
		}
	}
	// k= may be left out for RSA, and p= may be folded.
	bare := strings.Replace(rsaRecord, "k=rsa; ", "", 1)
	folded := bare[:len(bare)-20] + " " + bare[len(bare)-20:]
	if err := Matches(folded, rsaKey); err != nil {
		t.Errorf("an RSA record without k= and with a space in p=: %v", err)
	}
}

func TestGenerateRefusesUnknownAlgorithm(t *testing.T) {
	if _, err := Generate("dsa"); err == nil || !strings.Contains(err.Error(), `"rsa" or "ed25519"`) {
		t.Errorf("Generate(dsa) = %v", err)
	}
}

func TestDefaultSelectorIsTheDay(t *testing.T) {
	if got := DefaultSelector(time.Date(2026, 12, 7, 23, 0, 0, 0, time.UTC)); got != "s20261207" {
		t.Errorf("DefaultSelector = %q", got)
	}
}

func TestValidSelector(t *testing.T) {
	for s, want := range map[string]bool{"s20261207": true, "mail": true, "2026.a-b": true,
		"": false, "a b": false, "-a": false, "a-": false, "../x": false, "a/b": false, "a..b": false} {
		if ValidSelector(s) != want {
			t.Errorf("ValidSelector(%q) = %v", s, !want)
		}
	}
}
