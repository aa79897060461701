package signature

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	secret, body := []byte("0123456789abcdef"), []byte(`{"id":"Q1"}`)
	now := time.Unix(1767225600, 0)
	sig := Sign(secret, now.Unix(), body)
	// HMAC-SHA256("0123456789abcdef", `1767225600.{"id":"Q1"}`), by openssl:
	// printf '1767225600.{"id":"Q1"}' | openssl dgst -sha256 -hmac 0123456789abcdef
	if want := "v1=" + knownMAC; sig != want {
		t.Errorf("Sign: %s, want %s", sig, want)
	}
	for _, tc := range []struct {
		name      string
		ts, sig   string
		body      []byte
		now       time.Time
		wantError string
	}{
		{"good", "1767225600", sig, body, now, ""},
		{"4 minutes late", "1767225600", sig, body, now.Add(4 * time.Minute), ""},
		{"6 minutes late", "1767225600", sig, body, now.Add(6 * time.Minute), "replay window"},
		{"from the future", "1767225600", sig, body, now.Add(-6 * time.Minute), "replay window"},
		{"other timestamp", "1767225601", sig, body, now, "does not match"},
		{"other body", "1767225600", sig, []byte(`{"id":"Q2"}`), now, "does not match"},
		{"no timestamp", "", sig, body, now, "bad X-Postline-Timestamp"},
		{"no signature", "1767225600", "", body, now, "does not match"},
	} {
		err := Verify(secret, tc.ts, tc.sig, tc.body, tc.now, Window)
		if tc.wantError == "" && err != nil || tc.wantError != "" && (err == nil || !strings.Contains(err.Error(), tc.wantError)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.wantError)
		}
	}
}

// docs/webhooks.md shows receivers this package's Verify, word for word.
func TestGuideShowsVerify(t *testing.T) {
	src, err := os.ReadFile("signature.go")
	if err != nil {
		t.Fatal(err)
	}
	start := strings.Index(string(src), "func Verify(")
	end := start + strings.Index(string(src[start:]), "\n}\n") + 3
	guide, err := os.ReadFile("../../../docs/webhooks.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(guide), string(src[start:end])) {
		t.Errorf("docs/webhooks.md does not show Verify as signature.go has it:\n%s", src[start:end])
	}
}

const knownMAC = "9fe2bc090d2727695f4150cc55fcbb7308e32645fa0407889f93a04dc5dc2a78"
