package daemon

import (
	"errors"
	"testing"

	"github.com/rs/zerolog"
)

// The first failed flush stops the daemon once; later reports add nothing.
func TestFlushFailureStopsOnce(t *testing.T) {
	stops := 0
	f := &FlushFailure{Log: zerolog.Nop(), Stop: func() { stops++ }}
	f.Report(errors.New("syncfs: input/output error"))
	f.Report(errors.New("flush failed earlier"))
	if stops != 1 || !f.failed.Load() {
		t.Errorf("stops = %d, failed = %v; want 1, true", stops, f.failed.Load())
	}
}
