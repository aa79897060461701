package outcomes

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"postline/queue"
)

func TestRecordFindAndRetention(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	s := &Store{Dir: t.TempDir(), Retention: 7 * 24 * time.Hour, Now: func() time.Time { return now }}
	env := &queue.Envelope{ID: "06K03AGGXD8H8HT5", AuthUser: "a@example.test", Recipients: []*queue.Recipient{
		{Address: "x@example.org", State: queue.Delivered, Attempts: 1},
		{Address: "y@example.org", State: queue.Failed, Attempts: 2, LastError: "550 5.1.1 no such user"},
	}}
	if err := s.Record(FromEnvelope(env)); err != nil {
		t.Fatal(err)
	}
	m, err := s.Find(env.ID)
	if err != nil || m.AuthUser != "a@example.test" || m.Recipients[1].State != Bounced || m.Recipients[1].Reply == "" || !m.Finished.Equal(now) {
		t.Fatalf("Find: %+v, %v", m, err)
	}
	if _, err := s.Find("06K03AGGXD8H8HT6"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown ID: %v", err)
	}
	// Eight days later the day's file is past the retention: not answered, then deleted.
	now = now.Add(8 * 24 * time.Hour)
	if _, err := s.Find(env.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired record still found: %v", err)
	}
	env.ID = "06K03AGGXD8H8HT7"
	if err := s.Record(FromEnvelope(env)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "2026-05-01.jsonl")); !os.IsNotExist(err) {
		t.Errorf("expired file kept: %v", err)
	}
}

func TestFromEnvelopeStates(t *testing.T) {
	env := &queue.Envelope{Recipients: []*queue.Recipient{
		{Address: "q@x", State: queue.Pending},
		{Address: "d@x", State: queue.Pending, Attempts: 1, LastError: "451 4.2.0 busy", NextAttempt: time.Unix(1, 0)},
	}}
	m := FromEnvelope(env)
	if m.Recipients[0].State != Queued || m.Recipients[1].State != Deferred || m.Recipients[1].Reply != "451 4.2.0 busy" {
		t.Errorf("%+v", m.Recipients)
	}
}
