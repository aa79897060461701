package e2e

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"postline/plugins/webhook/signature"
)

// recipientStates returns address → state (and reply) from a GET answer.
func recipientStates(r apiReply) map[string][2]string {
	out := map[string][2]string{}
	list, _ := r.Body["recipients"].([]any)
	for _, x := range list {
		m, _ := x.(map[string]any)
		addr, _ := m["address"].(string)
		state, _ := m["state"].(string)
		reply, _ := m["reply"].(string)
		out[addr] = [2]string{state, reply}
	}
	return out
}

// waitState polls GET until ok accepts the recipients' states.
func (a *apiStack) waitState(t *testing.T, id string, ok func(map[string][2]string) bool) apiReply {
	t.Helper()
	var r apiReply
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		r = curlAPI(t, a.Plain+"/v1/messages/"+id, "-H", "Authorization: Bearer "+a.Token)
		if r.Code == 200 && ok(recipientStates(r)) {
			return r
		}
	}
	t.Fatalf("GET %s never reached the expected states: %d %s", id, r.Code, r.Raw)
	return r
}

// apiRelayStack is an API stack whose remote MX (remote.test) defers
// later@ (451) and refuses gone@ (550), and retries after an hour.
func apiRelayStack(t *testing.T) *apiStack {
	t.Helper()
	n := newRelayNet(t)
	mx := n.Sink(sinkOptions{Script: func(rcpt string, try int) sinkReply {
		if strings.HasPrefix(rcpt, "later@") {
			return rcptRefuse(451, "4.2.0", "mailbox busy, try later")
		}
		if strings.HasPrefix(rcpt, "gone@") {
			return rcptRefuse(550, "5.1.1", "no such user here")
		}
		return rcptOK
	}})
	n.DNS.Add(t, "remote.test. MX 10 mx.remote.test.", "mx.remote.test. A "+mx.IP)
	https, plain := freeAddr(t), freeAddr(t)
	s := n.Stack(relayConfig{RetryMin: "1h", RetryMax: "2h",
		MSA: fmt.Sprintf("http = [%q]\nhttp_plain = [%q]\n", https, plain)})
	return &apiStack{Stack: s, HTTPS: "https://" + https, Plain: "http://" + plain, Token: newToken(t, s, demoUser)}
}

func TestHTTPStatusDeliveredDeferredBounced(t *testing.T) {
	t.Parallel()
	a := apiRelayStack(t)
	s := a.Stack
	r := a.post(t, a.Plain, "message/rfc822", "From: demo@example.test\nSubject: states\n\nx\n",
		"?to=postmaster@example.test&to=later@remote.test&to=gone@remote.test")
	id, _ := r.Body["id"].(string)
	if r.Code != 202 {
		t.Fatalf("POST: %d %s", r.Code, r.Raw)
	}
	got := a.waitState(t, id, func(st map[string][2]string) bool {
		return st["postmaster@example.test"][0] == "delivered" && st["later@remote.test"][0] == "deferred" &&
			st["gone@remote.test"][0] == "bounced"
	})
	st := recipientStates(got)
	if !strings.Contains(st["later@remote.test"][1], "451") || !strings.Contains(st["later@remote.test"][1], "mailbox busy") {
		t.Errorf("deferred reply: %q", st["later@remote.test"][1])
	}
	if !strings.Contains(st["gone@remote.test"][1], "550") {
		t.Errorf("bounced reply: %q", st["gone@remote.test"][1])
	}

	// Someone else's token: the message does not exist for them.
	s.Postline("bob-password\n", "user", "add", "bob@example.test")
	bob := newToken(t, s, "bob@example.test")
	if r := curlAPI(t, a.Plain+"/v1/messages/"+id, "-H", "Authorization: Bearer "+bob); r.Code != 404 || r.errorField("code") != "not_found" {
		t.Errorf("GET as another user: %d %s", r.Code, r.Raw)
	}
	if r := curlAPI(t, a.Plain+"/v1/messages/06K03AGGXD8H8HT5", "-H", "Authorization: Bearer "+a.Token); r.Code != 404 {
		t.Errorf("GET unknown ID: %d %s", r.Code, r.Raw)
	}

	// After the message left the queue the MTA still answers, from its record.
	s.Postline("", "queue", "bounce", id)
	waitSpoolEmpty(t, s, 10*time.Second)
	after := a.waitState(t, id, func(st map[string][2]string) bool {
		return st["postmaster@example.test"][0] == "delivered" && st["later@remote.test"][0] == "bounced" &&
			st["gone@remote.test"][0] == "bounced"
	})
	if after.Body["finished"] == nil {
		t.Errorf("finished message without its end time: %s", after.Raw)
	}
}

// The submitter's webhook gets one signed event per recipient result:
// delivered, deferred with the reply and the next attempt, bounced.
func TestHTTPDeliveryEvents(t *testing.T) {
	t.Parallel()
	a := apiRelayStack(t)
	events := make(chan map[string]any, 10)
	var secret atomic.Value // []byte, set once the webhook is
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		key, _ := secret.Load().([]byte)
		err := signature.Verify(key, r.Header.Get(signature.TimestampHeader), r.Header.Get(signature.SignatureHeader), body, time.Now(), signature.Window)
		if err != nil {
			t.Errorf("event signature: %v", err)
		}
		var ev map[string]any
		json.Unmarshal(body, &ev)
		events <- ev
	}))
	defer srv.Close()
	out := a.Postline("", "token", "webhook", demoUser, srv.URL+"/events")
	key, _ := hex.DecodeString(strings.TrimSpace(strings.SplitN(out, "\n", 2)[0]))
	secret.Store(key)
	r := a.post(t, a.Plain, "message/rfc822", "From: demo@example.test\nSubject: events\n\nx\n",
		"?to=postmaster@example.test&to=later@remote.test&to=gone@remote.test")
	id, _ := r.Body["id"].(string)
	got := map[string]map[string]any{}
	for len(got) < 3 {
		select {
		case ev := <-events:
			got[ev["recipient"].(string)] = ev
		case <-time.After(20 * time.Second):
			t.Fatalf("events: %v", got)
		}
	}
	for rcpt, want := range map[string]string{"postmaster@example.test": "delivered", "later@remote.test": "deferred", "gone@remote.test": "bounced"} {
		if ev := got[rcpt]; ev["event"] != want || ev["id"] != id {
			t.Errorf("%s: %v, want %s of %s", rcpt, ev, want, id)
		}
	}
	if reply, _ := got["later@remote.test"]["reply"].(string); !strings.Contains(reply, "mailbox busy") || got["later@remote.test"]["next_attempt"] == nil {
		t.Errorf("deferred event: %v", got["later@remote.test"])
	}
}
