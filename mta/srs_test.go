package mta

import (
	"testing"
	"time"

	"postline/srs"
)

// A report to one of our SRS addresses goes to the sender behind it.
func TestUnSRS(t *testing.T) {
	now := time.Now()
	m := &Manager{SRS: &srs.Rewriter{Domain: "example.org", Secret: []byte("0123456789abcdef")}}
	addr, _ := m.SRS.Rewrite("alice@sender.example", now)
	other := &srs.Rewriter{Domain: "example.org", Secret: []byte("another secret..")}
	forged, _ := other.Rewrite("alice@sender.example", now)
	for in, want := range map[string]string{
		addr: "alice@sender.example", forged: forged, "bob@example.org": "bob@example.org",
		"SRS0=x@elsewhere.example": "SRS0=x@elsewhere.example",
	} {
		if got := m.unSRS(in, now); got != want {
			t.Errorf("unSRS(%s) = %s, want %s", in, got, want)
		}
	}
	if got := (&Manager{}).unSRS(addr, now); got != addr {
		t.Errorf("without SRS: %s", got)
	}
}
