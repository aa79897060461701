package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The MTA's counters, scraped as Prometheus does, follow what happened:
// a message from the internet and one submission queued and delivered,
// a recipient refused, an empty queue.
func TestMTAMetrics(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	s := StartStackWith(t, StackConfig{MTA: "metrics = \"" + addr + "\"\n"})
	if err := sendToMTA(s.MTA, "x@example.org", demoUser, "Subject: from outside\r\n\r\nhi\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := sendToMTA(s.MTA, "x@example.org", "nobody@example.test", "Subject: x\r\n\r\nx\r\n"); err == nil {
		t.Fatal("an unknown user was accepted")
	}
	if _, err := s.Submit(Submission{To: []string{demoUser}, Body: "Subject: submitted\r\n\r\nhi\r\n"}); err != nil {
		t.Fatal(err)
	}
	s.WaitForMail(demoUser, 2, 10*time.Second)
	want := []string{
		`postline_mta_messages_queued_total{source="internet"} 1`,
		`postline_mta_messages_queued_total{source="submission"} 1`,
		`postline_mta_refused_total{class="5xx",stage="rcpt"} 1`,
		`postline_mta_delivery_attempts_total{result="delivered",route="local"} 2`,
		`postline_mta_queue_messages 0`,
	}
	var body string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		body = scrape(t, "http://"+addr+"/metrics")
		if containsAll(body, want) {
			return
		}
	}
	t.Errorf("metrics lack some of %q:\n%s", want, body)
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
