package srs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

func testRewriter() *Rewriter {
	return &Rewriter{Domain: "forward.example", Secret: []byte("0123456789abcdef0123456789abcdef")}
}

func TestRewriteAndReverse(t *testing.T) {
	r := testRewriter()
	for _, sender := range []string{"alice@example.org", "a=b+c@sub.example.net", "SRS0=xxxx=TT=other.example=bob@third.example"} {
		addr, err := r.Rewrite(sender, testNow)
		if err != nil {
			t.Fatal(err)
		}
		local, domain, _ := strings.Cut(addr, "@")
		if domain != "forward.example" || !IsSRS(local) {
			t.Errorf("%s rewritten to %s", sender, addr)
		}
		if !strings.HasSuffix(local, "="+sender[strings.LastIndexByte(sender, '@')+1:]+"="+sender[:strings.LastIndexByte(sender, '@')]) {
			t.Errorf("%s: %s does not end with =domain=local", sender, local)
		}
		for _, l := range []string{local, strings.ToLower(local), strings.ToUpper(local[:10]) + local[10:]} {
			if got, err := r.Reverse(l, testNow.Add(20*24*time.Hour)); err != nil || !strings.EqualFold(got, sender) || l == local && got != sender {
				t.Errorf("Reverse(%s) = %q, %v; want %s", l, got, err, sender)
			}
		}
	}
}

func TestReverseRefuses(t *testing.T) {
	r := testRewriter()
	addr, _ := r.Rewrite("alice@example.org", testNow)
	local, _, _ := strings.Cut(addr, "@")
	other := &Rewriter{Domain: r.Domain, Secret: []byte("another secret, another host....")}
	for name, tc := range map[string]struct {
		local string
		r     *Rewriter
		now   time.Time
		want  error
	}{
		"expired":         {local, r, testNow.Add(22 * 24 * time.Hour), ErrExpired},
		"from the future": {local, r, testNow.Add(-2 * 24 * time.Hour), ErrExpired},
		"other secret":    {local, other, testNow, ErrBadHash},
		"forged domain":   {strings.Replace(local, "example.org", "example.com", 1), r, testNow, ErrBadHash},
		"forged local":    {local + "x", r, testNow, ErrBadHash},
		"not srs":         {"alice", r, testNow, ErrNotSRS},
		"too few fields":  {"SRS0=abcd=TT=example.org", r, testNow, ErrNotSRS},
		"empty local":     {"SRS0=abcd=TT=example.org=", r, testNow, ErrNotSRS},
	} {
		if got, err := tc.r.Reverse(tc.local, tc.now); !errors.Is(err, tc.want) {
			t.Errorf("%s: Reverse = %q, %v; want %v", name, got, err, tc.want)
		}
	}
	// The timestamp wraps every 1024 days: an address 1024 days old
	// looks new, as in every SRS implementation; that is why MaxAge is
	// far shorter.
	if _, err := r.Reverse(local, testNow.Add(1024*24*time.Hour)); err != nil {
		t.Errorf("wrapped timestamp: %v", err)
	}
}

func TestLoadSecret(t *testing.T) {
	path := filepath.Join(t.TempDir(), "srs.secret")
	a, err := LoadSecret(path)
	if err != nil || len(a) != secretSize {
		t.Fatalf("first load: %d bytes, %v", len(a), err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	b, err := LoadSecret(path)
	if err != nil || string(a) != string(b) {
		t.Errorf("second load gave another secret (%v)", err)
	}
	os.WriteFile(path, []byte("short"), 0o600)
	if _, err := LoadSecret(path); err == nil || !strings.Contains(err.Error(), "remove it") {
		t.Errorf("short secret: %v", err)
	}
}

func TestReverseAddress(t *testing.T) {
	r := testRewriter()
	addr, _ := r.Rewrite("alice@example.org", testNow)
	if got, err := r.ReverseAddress(addr, testNow); err != nil || got != "alice@example.org" {
		t.Errorf("ReverseAddress(%s) = %q, %v", addr, got, err)
	}
	local := strings.TrimSuffix(addr, "@forward.example")
	var off *Rewriter
	for _, a := range []string{local + "@elsewhere.example", "bob@forward.example", local} {
		if _, err := r.ReverseAddress(a, testNow); !errors.Is(err, ErrNotSRS) {
			t.Errorf("ReverseAddress(%s): %v, want ErrNotSRS", a, err)
		}
	}
	if _, err := off.ReverseAddress(addr, testNow); !errors.Is(err, ErrNotSRS) {
		t.Errorf("SRS off: %v", err)
	}
}
