package users

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWebhooksSetLookupRemove(t *testing.T) {
	dir := t.TempDir()
	like := filepath.Join(dir, "users")
	os.WriteFile(like, nil, 0o640)
	f := WebhookFile{Path: filepath.Join(dir, "webhooks"), Like: like}
	secret, err := f.Set("Ann@Example.org", "https://app.example.org/hooks")
	if err != nil || len(secret) != 64 {
		t.Fatalf("Set: %q, %v", secret, err)
	}
	w, err := OpenWebhooks(f.Path)
	if err != nil {
		t.Fatal(err)
	}
	h, ok := w.Lookup("ann@example.org")
	if !ok || h.URL != "https://app.example.org/hooks" || len(h.Secret) != 32 {
		t.Fatalf("Lookup: %+v, %v", h, ok)
	}
	if _, err := f.Set("ann@example.org", "ftp://x"); err == nil || !strings.Contains(err.Error(), "not an http(s) URL") {
		t.Errorf("ftp URL: %v", err)
	}
	if err := f.Remove("ann@example.org"); err != nil {
		t.Fatal(err)
	}
	if err := f.Remove("ann@example.org"); err == nil {
		t.Error("second remove passed")
	}
	os.WriteFile(f.Path, []byte("ann@example.org https://x short\n"), 0o640)
	if _, err := OpenWebhooks(f.Path); err == nil || !strings.Contains(err.Error(), "webhooks:1: expected") {
		t.Errorf("bad line: %v", err)
	}
}
