package e2e

// The HTTP submission API (docs/http-api.md), driven with curl: the
// same submission path as SMTP, the 202 only once the MTA queued.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// apiStack is a stack with the HTTP API on HTTPS and plain loopback
// listeners, and a token for the demo user.
type apiStack struct {
	*Stack
	HTTPS, Plain string // base URLs
	Token        string
}

func startAPIStack(t *testing.T, extra StackConfig) *apiStack {
	t.Helper()
	https, plain := freeAddr(t), freeAddr(t)
	extra.MSA += fmt.Sprintf("http = [%q]\nhttp_plain = [%q]\n", https, plain)
	s := StartStackWith(t, extra)
	return &apiStack{Stack: s, HTTPS: "https://" + https, Plain: "http://" + plain, Token: newToken(t, s, demoUser)}
}

// newToken runs `postline token add` and returns the token it printed.
func newToken(t *testing.T, s *Stack, user string) string {
	t.Helper()
	out := s.Postline("", "token", "add", user)
	tok := regexp.MustCompile(`(?m)^pl_[A-Za-z0-9_-]{43}$`).FindString(out)
	if tok == "" {
		t.Fatalf("token add printed no token:\n%s", out)
	}
	return tok
}

// apiReply is one curl call's status and decoded JSON body.
type apiReply struct {
	Code int
	Body map[string]any
	Raw  string
}

// errorField returns error.<name> of an error answer.
func (r apiReply) errorField(name string) string {
	e, _ := r.Body["error"].(map[string]any)
	s, _ := e[name].(string)
	return s
}

// curlAPI runs curl with args against url and returns the answer.
func curlAPI(t *testing.T, url string, args ...string) apiReply {
	t.Helper()
	curl := requireProgram(t, "curl")
	args = append([]string{"-sk", "-w", "\n%{http_code}", url}, args...)
	out, err := exec.Command(curl, args...).Output()
	if err != nil {
		t.Fatalf("curl %v: %v\n%s", args, err, out)
	}
	text := strings.TrimRight(string(out), "\n")
	i := strings.LastIndex(text, "\n")
	r := apiReply{Raw: text[:max(i, 0)]}
	fmt.Sscan(text[i+1:], &r.Code)
	json.Unmarshal([]byte(r.Raw), &r.Body)
	return r
}

func (a *apiStack) post(t *testing.T, base, ctype, body string, query string) apiReply {
	t.Helper()
	return curlAPI(t, base+"/v1/messages"+query, "-H", "Authorization: Bearer "+a.Token,
		"-H", "Content-Type: "+ctype, "--data-binary", body)
}

func TestHTTPSubmitRawWithCurl(t *testing.T) {
	t.Parallel()
	a := startAPIStack(t, StackConfig{})
	msg := "From: Demo <demo@example.test>\nTo: postmaster@example.test\nBcc: postmaster@other.example\nSubject: raw over https\n\nhello from curl\n"
	r := a.post(t, a.HTTPS, "message/rfc822", msg, "")
	id, _ := r.Body["id"].(string)
	if r.Code != 202 || r.Body["status"] != "queued" || len(id) != 16 {
		t.Fatalf("POST raw: %d %s", r.Code, r.Raw)
	}
	got := string(a.WaitForRawMail("postmaster@example.test", 1, 10*time.Second)[0])
	// The 202's ID is the one in the trace field and the logs.
	if !strings.Contains(got, "id "+id) || !strings.Contains(got, "with HTTP") {
		t.Errorf("Received field lacks id %s or HTTP:\n%s", id, got)
	}
	if strings.Contains(got, "Bcc") || !strings.Contains(got, "Subject: raw over https\n") ||
		!strings.Contains(got, "Message-ID: <") || !strings.Contains(got, "\n\nhello from curl\n") {
		t.Errorf("delivered message:\n%q", got)
	}
	// The Bcc recipient got it too (other.example is local here).
	a.WaitForRawMail("postmaster@other.example", 1, 10*time.Second)
}

func TestHTTPSubmitJSONWithAttachment(t *testing.T) {
	t.Parallel()
	a := startAPIStack(t, StackConfig{})
	body, _ := json.Marshal(map[string]any{
		"from": "Demo <demo@example.test>", "to": []string{"postmaster@example.test"},
		"subject": "Grüße per JSON", "text": "plain body", "html": "<p>html body</p>",
		"headers":     map[string]string{"X-Campaign": "spring"},
		"attachments": []map[string]string{{"filename": "report.csv", "content_type": "text/csv", "content_base64": base64.StdEncoding.EncodeToString([]byte("a,b\n1,2\n"))}},
	})
	r := a.post(t, a.Plain, "application/json", string(body), "")
	if r.Code != 202 || r.Body["status"] != "queued" {
		t.Fatalf("POST JSON: %d %s", r.Code, r.Raw)
	}
	got := string(a.WaitForRawMail("postmaster@example.test", 1, 10*time.Second)[0])
	for _, want := range []string{"id " + r.Body["id"].(string), "From: \"Demo\" <demo@example.test>", "X-Campaign: spring",
		"Subject: =?utf-8?", "multipart/mixed", "multipart/alternative", "text/html", "filename=report.csv",
		base64.StdEncoding.EncodeToString([]byte("a,b\n1,2\n")), "Date: ", "Message-Id: <"} {
		if !strings.Contains(got, want) {
			t.Errorf("delivered message lacks %q:\n%s", want, got)
		}
	}
}

func TestHTTPErrors(t *testing.T) {
	t.Parallel()
	a := startAPIStack(t, StackConfig{TopLevel: "max_message_size = 4096\n"})
	raw := "From: demo@example.test\nTo: postmaster@example.test\nSubject: x\n\nbody\n"
	forged := curlAPI(t, a.Plain+"/v1/messages", "-H", "Authorization: Bearer pl_"+strings.Repeat("A", 43),
		"-H", "Content-Type: message/rfc822", "--data-binary", raw)
	if forged.Code != 401 || forged.errorField("code") != "unauthorized" || forged.errorField("status") != "5.7.8" {
		t.Errorf("forged token: %d %s", forged.Code, forged.Raw)
	}
	bad := a.post(t, a.Plain, "application/json", `{"from": "demo@example.test", "to": [`, "")
	if bad.Code != 400 || bad.errorField("code") != "bad_request" || bad.errorField("status") != "5.5.2" {
		t.Errorf("bad JSON: %d %s", bad.Code, bad.Raw)
	}
	big := a.post(t, a.Plain, "message/rfc822", raw+strings.Repeat("0123456789abcdef\n", 400), "")
	if big.Code != 413 || big.errorField("code") != "message_too_big" || big.errorField("status") != "5.3.4" {
		t.Errorf("too big: %d %s", big.Code, big.Raw)
	}
	// Streamed without Content-Length: the MTA's DATA is broken off.
	chunked := curlAPI(t, a.Plain+"/v1/messages", "-H", "Authorization: Bearer "+a.Token, "-H", "Content-Type: message/rfc822",
		"-H", "Transfer-Encoding: chunked", "--data-binary", raw+strings.Repeat("0123456789abcdef\n", 400))
	if chunked.Code != 413 || chunked.errorField("code") != "message_too_big" {
		t.Errorf("too big, chunked: %d %s", chunked.Code, chunked.Raw)
	}
	other := a.post(t, a.Plain, "message/rfc822", strings.Replace(raw, "From: demo@", "From: boss@", 1), "")
	if other.Code != 403 || other.errorField("code") != "sender_not_owned" || other.errorField("status") != "5.7.1" {
		t.Errorf("someone else's sender: %d %s", other.Code, other.Raw)
	}
	// Nothing of the refused ones was queued or delivered.
	if envs := queuedEnvelopes(t, a.Stack); len(envs) != 0 {
		t.Errorf("queued after refusals: %v", envs)
	}
	if _, err := os.Stat(filepath.Join(a.Mailbox("postmaster@example.test"), "new")); err == nil {
		if entries, _ := os.ReadDir(filepath.Join(a.Mailbox("postmaster@example.test"), "new")); len(entries) != 0 {
			t.Errorf("%d messages delivered after refusals", len(entries))
		}
	}
}

func TestHTTPPluginRefusalMapped(t *testing.T) {
	t.Parallel()
	a := startAPIStack(t, StackConfig{Plugins: "[[plugins]]\nname = \"example\"\ndaemon = \"msa\"\nhooks = [\"data\"]\n[plugins.config]\nword = \"lottery\"\n"})
	r := a.post(t, a.Plain, "message/rfc822", "From: demo@example.test\nTo: postmaster@example.test\nSubject: you won the lottery\n\nx\n", "")
	if r.Code != 422 || r.errorField("code") != "rejected" || r.errorField("status") != "5.7.1" {
		t.Errorf("plugin refusal: %d %s", r.Code, r.Raw)
	}
}

func TestTokenCLI(t *testing.T) {
	t.Parallel()
	a := startAPIStack(t, StackConfig{})
	data, err := os.ReadFile(filepath.Join(a.Dir, "tokens"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), a.Token[3:]) || !strings.Contains(string(data), "sha256:") {
		t.Errorf("tokens file holds the token or no hash:\n%s", data)
	}
	list := a.Postline("", "token", "list", demoUser)
	id := strings.Fields(list)[0]
	if strings.Contains(list, a.Token) || len(id) != 12 {
		t.Errorf("token list: %q", list)
	}
	if out, err := runPostline(a.Config, "", "token", "add", "nobody@example.test"); err == nil {
		t.Errorf("token for a user without account: %s", out)
	}
	a.Postline("", "token", "remove", demoUser, id)
	// The MSA reads the file again: the token no longer works.
	r := a.post(t, a.Plain, "message/rfc822", "From: demo@example.test\nTo: postmaster@example.test\n\nx\n", "")
	if r.Code != 401 {
		t.Errorf("removed token: %d %s", r.Code, r.Raw)
	}
}

// A deleted account's tokens stop working, and `user del` removes them
// and its webhook from their files.
func TestTokenOfDeletedUser(t *testing.T) {
	t.Parallel()
	a := startAPIStack(t, StackConfig{})
	a.Postline("", "token", "webhook", demoUser, "https://app.example.test/hooks")
	// The token is still in the file while the account goes: refused.
	users, _ := os.ReadFile(filepath.Join(a.Dir, "users"))
	var kept []string
	for _, l := range strings.Split(string(users), "\n") {
		if !strings.HasPrefix(l, demoUser) {
			kept = append(kept, l)
		}
	}
	os.WriteFile(filepath.Join(a.Dir, "users"), []byte(strings.Join(kept, "\n")), 0o600)
	r := a.post(t, a.Plain, "message/rfc822", "From: demo@example.test\nTo: postmaster@example.test\n\nx\n", "")
	if r.Code != 401 {
		t.Errorf("token of a deleted account: %d %s", r.Code, r.Raw)
	}
	os.WriteFile(filepath.Join(a.Dir, "users"), users, 0o600)
	a.Postline("", "user", "del", demoUser)
	for _, f := range []string{"tokens", "webhooks"} {
		if b, _ := os.ReadFile(filepath.Join(a.Dir, f)); strings.Contains(string(b), demoUser) {
			t.Errorf("%s still names %s:\n%s", f, demoUser, b)
		}
	}
}
