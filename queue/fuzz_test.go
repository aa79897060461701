package queue

import (
	"encoding/json"
	"testing"
	"time"
)

// FuzzDecodeEnvelope: whatever bytes an envelope file holds, decoding
// either fails or yields an envelope the manager can walk safely.
func FuzzDecodeEnvelope(f *testing.F) {
	id := NewID(time.Unix(1_800_000_000, 0))
	good, _ := json.Marshal(&Envelope{ID: id, From: "a@example.test",
		Recipients: []*Recipient{{Address: "b@example.test", State: Pending}}})
	f.Add(good)
	f.Add([]byte(`{"id":"` + id + `","recipients":[null]}`))
	f.Add([]byte(`{"id":"` + id + `","recipients":[{"address":"x","state":"weird"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := decodeEnvelope(id, data)
		if err != nil {
			return
		}
		env.Done()
		env.Clone()
		for _, r := range env.Recipients {
			if r.Address == "" {
				t.Fatal("empty recipient accepted")
			}
		}
	})
}
