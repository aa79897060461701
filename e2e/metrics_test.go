package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Each daemon's counters, scraped as Prometheus does, follow what
// happened: a message from the internet and one submission queued and
// delivered, a recipient refused, a failed login, an empty queue.
func TestMetrics(t *testing.T) {
	t.Parallel()
	msaAddr, mtaAddr, mdaAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	s := StartStackWith(t, StackConfig{MSA: "metrics = \"" + msaAddr + "\"\n",
		MTA: "metrics = \"" + mtaAddr + "\"\n", MDA: "metrics = \"" + mdaAddr + "\"\n"})
	if err := sendToMTA(s.MTA, "x@example.org", demoUser, "Subject: from outside\r\n\r\nhi\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := sendToMTA(s.MTA, "x@example.org", "nobody@example.test", "Subject: x\r\n\r\nx\r\n"); err == nil {
		t.Fatal("an unknown user was accepted")
	}
	if _, err := s.Submit(Submission{To: []string{demoUser}, Body: "Subject: submitted\r\n\r\nhi\r\n"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Submit(Submission{Pass: "wrong", To: []string{demoUser}, Body: "x"}); err == nil {
		t.Fatal("a wrong password was accepted")
	}
	s.WaitForMail(demoUser, 2, 10*time.Second)
	for addr, want := range map[string][]string{
		mtaAddr: {
			`postline_mta_messages_queued_total{source="internet"} 1`,
			`postline_mta_messages_queued_total{source="submission"} 1`,
			`postline_mta_refused_total{class="5xx",stage="rcpt"} 1`,
			`postline_mta_delivery_attempts_total{result="delivered",route="local"} 2`,
			`postline_mta_queue_messages 0`,
		},
		msaAddr: {
			`postline_msa_logins_total{result="ok"} 1`,
			`postline_msa_logins_total{result="failed"} 1`,
			`postline_msa_submissions_total{result="accepted"} 1`,
		},
		mdaAddr: {`postline_mda_copies_total{result="delivered"} 2`},
	} {
		var body string
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if body = scrape(t, "http://"+addr+"/metrics"); containsAll(body, want) {
				break
			}
		}
		if !containsAll(body, want) {
			t.Errorf("metrics at %s lack some of %q:\n%s", addr, want, body)
		}
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
