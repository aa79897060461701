package msa

import (
	"testing"
	"time"
)

func TestAuthLimiterDelaysThenLocksOut(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := newAuthLimiter(10, 3, 15*time.Minute, 2*time.Second)
	l.now = func() time.Time { return now }
	var delays []time.Duration
	for i := 0; i < 3; i++ {
		if l.locked("192.0.2.1", "alice@example.test") {
			t.Fatalf("locked after %d failures", i)
		}
		d, _ := l.failed("192.0.2.1", "alice@example.test")
		delays = append(delays, d)
	}
	if want := []time.Duration{time.Second, 2 * time.Second, 2 * time.Second}; !equal(delays, want) {
		t.Errorf("delays %v, want %v (growing, capped)", delays, want)
	}
	if !l.locked("198.51.100.7", "alice@example.test") {
		t.Error("account not locked after 3 failures, from any address")
	}
	if l.locked("192.0.2.1", "bob@example.test") {
		t.Error("another account locked by alice's failures")
	}
	now = now.Add(16 * time.Minute)
	if l.locked("192.0.2.1", "alice@example.test") {
		t.Error("still locked after the lockout window")
	}
}

func TestAuthLimiterPerIP(t *testing.T) {
	l := newAuthLimiter(4, 100, time.Hour, 0)
	for i, acct := range []string{"a@x", "b@x", "c@x", "d@x"} {
		if _, started := l.failed("192.0.2.9", acct); started != (i == 3) {
			t.Errorf("failure %d: lockout started = %v", i+1, started)
		}
	}
	if !l.locked("192.0.2.9", "e@x") {
		t.Error("address not locked after guessing at 4 accounts")
	}
	l.succeeded("e@x") // a good login elsewhere does not lift the address's lock
	if !l.locked("192.0.2.9", "e@x") {
		t.Error("lock lifted by another account's success")
	}
}

func equal(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
