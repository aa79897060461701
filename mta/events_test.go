package mta

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"postline/plugins/webhook/signature"
	"postline/queue"
	"postline/users"
)

// An event goes to the submitter's webhook, signed, and is tried again
// after a refusal; a message of a user without a webhook sends none.
func TestEventsPostedSignedAndRetried(t *testing.T) {
	var tries atomic.Int32
	got := make(chan Event, 1)
	var key []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := signature.Verify(key, r.Header.Get(signature.TimestampHeader), r.Header.Get(signature.SignatureHeader), body, time.Now(), signature.Window); err != nil {
			t.Errorf("signature: %v", err)
		}
		if tries.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var ev Event
		json.Unmarshal(body, &ev)
		got <- ev
	}))
	defer srv.Close()
	dir := t.TempDir()
	like := filepath.Join(dir, "users")
	os.WriteFile(like, nil, 0o640)
	f := users.WebhookFile{Path: filepath.Join(dir, "webhooks"), Like: like}
	secret, err := f.Set("ann@example.org", srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	key, _ = hex.DecodeString(secret)
	hooks, err := users.OpenWebhooks(f.Path)
	if err != nil {
		t.Fatal(err)
	}
	e := NewEvents(hooks, zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.Run(ctx)
	r := &queue.Recipient{Address: "bob@example.net", State: queue.Failed, LastError: "550 5.1.1 no such user", Attempts: 1}
	e.Notify(&queue.Envelope{ID: "Q2", AuthUser: "carl@example.org"}, r, time.Now()) // no webhook: nothing
	e.Notify(&queue.Envelope{ID: "Q1", AuthUser: "ann@example.org"}, r, time.Now())
	select {
	case ev := <-got:
		if ev.Event != "bounced" || ev.ID != "Q1" || ev.Reply != "550 5.1.1 no such user" || tries.Load() != 2 {
			t.Errorf("event %+v after %d tries", ev, tries.Load())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no event after %d tries", tries.Load())
	}
}
