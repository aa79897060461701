package e2e

import (
	"strings"
	"testing"
	"time"
)

// A message bigger than the mailbox quota is answered 452 4.2.2 by the
// MDA, stays queued and is retried; still over quota after quota_grace
// it bounces with 5.2.2, and the small bounce fits into the sender's
// mailbox.
func TestQuotaDefersThenBounces(t *testing.T) {
	t.Parallel()
	s := StartStackWith(t, StackConfig{MDA: "quota = 20000\nquota_grace = \"3s\"\n"})
	big := "Subject: too big\r\n\r\n" + strings.Repeat("0123456789abcdef0123456789abcdef\r\n", 1000)
	if _, err := s.Submit(Submission{To: []string{demoUser}, Body: big}); err != nil {
		t.Fatal(err)
	}
	s.WaitLog(`"error":"452 4.2.2 <demo@example.test> Mailbox full"`, 1, 10*time.Second)
	s.WaitLog(`"message":"delivery failed permanently"`, 1, 15*time.Second)
	raw := s.WaitForRawMail(demoUser, 1, 10*time.Second)[0]
	b := parseBounce(t, raw)
	checkBounceEnvelope(t, b, raw, "too big")
	r := b.Recipient(t, demoUser)
	if r.Get("Status") != "5.2.2" || r.Get("Action") != "failed" || !strings.Contains(r.Get("Diagnostic-Code"), "Mailbox full") {
		t.Errorf("recipient fields %v, want failed 5.2.2 with the MDA's reply", r)
	}
}
