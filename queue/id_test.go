package queue_test

import (
	"strings"
	"testing"
	"time"

	"postline/queue"
)

func TestNewIDFormat(t *testing.T) {
	now := time.Now()
	seen := map[string]bool{}
	for range 100 {
		id := queue.NewID(now) // same millisecond: only the random part differs
		if len(id) != 16 || strings.Trim(id, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
			t.Fatalf("NewID = %q, want 16 characters of [0-9A-Z]", id)
		}
		if !queue.ValidID(id) {
			t.Fatalf("ValidID(NewID) = false for %q", id)
		}
		seen[id] = true
	}
	// 32 random bits: one repeat among 100 has a chance of about 1e-6,
	// two would mean the random part is broken.
	if len(seen) < 99 {
		t.Errorf("only %d distinct IDs out of 100 in one millisecond", len(seen))
	}
}

// The spool relies on IDs sorting by arrival: Recover returns envelopes
// sorted by ID as "oldest first". Consecutive milliseconds walk every
// value of the low time digits, so every letter of the alphabet is met.
func TestNewIDSortsByTime(t *testing.T) {
	base := time.UnixMilli(1_700_000_000_000)
	prev := queue.NewID(base)
	for ms := int64(1); ms <= 5000; ms++ {
		at := base.Add(time.Duration(ms) * time.Millisecond)
		id := queue.NewID(at)
		if id <= prev {
			t.Fatalf("NewID(%v) = %s sorts before NewID of 1ms earlier = %s", at.UTC(), id, prev)
		}
		prev = id
	}
}

func TestValidID(t *testing.T) {
	good := queue.NewID(time.Now())
	tests := []struct {
		id   string
		want bool
	}{
		{good, true},
		{"0123456789BCDFGH", true},
		{"", false},
		{"../x", false},
		{"../../../../../x", false}, // 16 characters, still a path
		{"0123456789BCDFG", false},  // 15
		{"0123456789BCDFGHJ", false},
		{strings.ToLower(good), false},
		{"0123456789BCDFG/", false},
		{"0123456789BCDFG.", false},
		{"0123456789BCDFGE", false}, // E is not in the alphabet
		{"0123456789BCDFG\x00", false},
	}
	for _, tt := range tests {
		if got := queue.ValidID(tt.id); got != tt.want {
			t.Errorf("ValidID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

func TestEnvelopeDoneAndClone(t *testing.T) {
	env := &queue.Envelope{ID: "x", Recipients: []*queue.Recipient{
		{Address: "a@x", State: queue.Delivered},
		{Address: "b@x", State: queue.Pending},
	}}
	if env.Done() {
		t.Error("Done with a pending recipient")
	}
	c := env.Clone()
	c.Recipients[1].State = queue.Failed
	if !c.Done() {
		t.Error("clone not Done after its last pending recipient failed")
	}
	// A delivery works on its clone; the manager's copy must not change.
	if env.Recipients[1].State != queue.Pending || env.Done() {
		t.Error("changing the clone changed the original")
	}
}

func TestIDTime(t *testing.T) {
	now := time.Date(2026, 12, 7, 6, 50, 1, 234e6, time.UTC)
	got, ok := queue.IDTime(queue.NewID(now))
	if !ok || !got.Equal(now) {
		t.Errorf("IDTime(NewID(%v)) = %v %v", now, got, ok)
	}
	if _, ok := queue.IDTime("not-an-id"); ok {
		t.Error("IDTime of a bad ID")
	}
}
