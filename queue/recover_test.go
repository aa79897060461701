package queue_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"postline/durable"
	"postline/queue"
)

// TestRecoverCleansCrashLeftovers simulates a crash in the middle of a
// Store: a temporary file, and message data whose envelope was never
// written. Both go; the committed message stays.
func TestRecoverCleansCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, durable.OS{})
	kept := newEnvelope(time.Now(), "a@example.test")
	if err := s.Store(kept, strings.NewReader("kept")); err != nil {
		t.Fatal(err)
	}
	orphan := queue.NewID(time.Now())
	write := func(rel, content string) {
		if err := os.WriteFile(filepath.Join(dir, rel), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("msg/"+orphan, "data of a message whose envelope never got written")
	write("tmp/"+orphan+".env", `{"id":`)
	write("tmp/"+queue.NewID(time.Now())+".msg", "half")

	envs := recoverAll(t, dir)
	if len(envs) != 1 || envs[0].ID != kept.ID {
		t.Fatalf("Recover returned %v, want only %s", envs, kept.ID)
	}
	if n := names(t, filepath.Join(dir, "tmp")); len(n) != 0 {
		t.Errorf("tmp/ after Recover: %q", n)
	}
	if n := names(t, filepath.Join(dir, "msg")); len(n) != 0 {
		t.Errorf("msg/ after Recover: %q, want nothing (the kept message is in the log)", n)
	}
}

func TestRecoverOldestFirst(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, durable.OS{})
	// Fixed times a few seconds apart: their order is decided by the
	// time digits of the IDs alone, not by the random part.
	base := time.UnixMilli(1_700_000_000_000)
	for _, sec := range []int{3, 1, 2} {
		env := newEnvelope(base.Add(time.Duration(sec)*time.Second), "a@example.test")
		if err := s.Store(env, strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
	}
	envs := recoverAll(t, dir)
	for i := 1; i < len(envs); i++ {
		if !envs[i-1].Received.Before(envs[i].Received) {
			t.Errorf("Recover order: %v before %v", envs[i-1].Received, envs[i].Received)
		}
	}
}

// An envelope cut short (empty, or JSON ending early) is a Store's that
// a power loss came before its flush: never acknowledged, so dropped
// with its data, not set aside as damage for the admin.
func TestRecoverDropsEnvelopeCutShort(t *testing.T) {
	for name, env := range map[string]string{"empty": "", "cut": `{"id": "trunc`} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			openSpool(t, dir, durable.OS{})
			id := queue.NewID(time.Now())
			os.WriteFile(filepath.Join(dir, "env", id), []byte(env), 0o600)
			os.WriteFile(filepath.Join(dir, "msg", id), []byte("x"), 0o600)
			s := openSpool(t, dir, durable.OS{})
			envs, err := s.Recover()
			dropped, damaged := s.Recovered()
			if err != nil || len(envs) != 0 || len(damaged) != 0 || len(dropped) != 1 || dropped[0] != id {
				t.Errorf("Recover = %v, %v; dropped %v, damaged %v", envs, err, dropped, damaged)
			}
			if s.Has(id) {
				t.Error("the cut message's files are still there")
			}
		})
	}
}

// An envelope that does not decode otherwise is set aside with its data
// in damaged/, named for the log, and the rest of the queue starts.
func TestRecoverSetsAsideDamagedEnvelope(t *testing.T) {
	for name, env := range map[string]string{
		"bad JSON":      `{"id": trunc}`,
		"ID mismatch":   `{"id":"0123456789BCDFGH"}`,
		"no recipients": `{"id":"ID"}`,
		"zeros":         "\x00\x00\x00\x00",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			openSpool(t, dir, durable.OS{})
			id := queue.NewID(time.Now())
			os.WriteFile(filepath.Join(dir, "env", id), []byte(strings.ReplaceAll(env, "ID", id)), 0o600)
			os.WriteFile(filepath.Join(dir, "msg", id), []byte("x"), 0o600)
			s := openSpool(t, dir, durable.OS{})
			envs, err := s.Recover()
			if _, damaged := s.Recovered(); err != nil || len(envs) != 0 || len(damaged) != 1 || damaged[0] != id {
				t.Errorf("Recover = %v, %v; damaged %v", envs, err, damaged)
			}
			if got := names(t, s.DamagedDir()); len(got) != 2 {
				t.Errorf("damaged/ holds %q, want the envelope and its data", got)
			}
		})
	}
}

// An envelope of a message already attempted whose data is gone is real
// damage: Recover stops and names it.
func TestRecoverMissingDataOfAttemptedMessage(t *testing.T) {
	dir := t.TempDir()
	openSpool(t, dir, durable.OS{})
	id := queue.NewID(time.Now())
	env := `{"id":"` + id + `","recipients":[{"address":"b@example.test","state":"pending","attempts":1}]}`
	os.WriteFile(filepath.Join(dir, "env", id), []byte(env), 0o600)
	_, err := openSpool(t, dir, durable.OS{}).Recover()
	if err == nil || !strings.Contains(err.Error(), id) || !strings.Contains(err.Error(), "no message data") {
		t.Errorf("Recover error = %v, want one naming %s", err, id)
	}
}

// A record a crash cut short before its flush (too short, or zeros
// where its bytes should be) was never acknowledged: Recover drops it,
// and keeps the records before it.
func TestRecoverDropsRecordCutShort(t *testing.T) {
	for name, damage := range map[string]func(path string, size int64){
		"truncated": func(p string, size int64) { os.Truncate(p, size-5) },
		"zeroed": func(p string, size int64) {
			b, _ := os.ReadFile(p)
			clear(b[size-8:])
			os.WriteFile(p, b, 0o600)
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := openSpool(t, dir, durable.OS{})
			kept, cut := newEnvelope(time.Now(), "a@example.test"), newEnvelope(time.Now(), "b@example.test")
			for _, env := range []*queue.Envelope{kept, cut} {
				if err := s.Store(env, strings.NewReader("Subject: x\r\n\r\nbody\r\n")); err != nil {
					t.Fatal(err)
				}
			}
			seg := onlySegment(t, dir)
			st, _ := os.Stat(seg)
			damage(seg, st.Size())
			envs := recoverAll(t, dir)
			if len(envs) != 1 || envs[0].ID != kept.ID {
				t.Errorf("Recover = %v, want only %s", envs, kept.ID)
			}
		})
	}
}

// onlySegment returns the one segment of the queue log with records.
func onlySegment(t *testing.T, dir string) string {
	t.Helper()
	var found []string
	for _, n := range names(t, filepath.Join(dir, "log")) {
		if st, err := os.Stat(filepath.Join(dir, "log", n)); err == nil && st.Size() > 0 {
			found = append(found, filepath.Join(dir, "log", n))
		}
	}
	if len(found) != 1 {
		t.Fatalf("log segments with records: %q, want one", found)
	}
	return found[0]
}

// An envelope of an older version without its data, never attempted, is
// a Store cut short by a crash between the two files' renames: never
// acknowledged, so Recover drops it. Once attempted, missing data is
// damage (above).
func TestRecoverDropsUnfinishedStore(t *testing.T) {
	dir := t.TempDir()
	openSpool(t, dir, durable.OS{})
	id := queue.NewID(time.Now())
	env := `{"id":"` + id + `","size":3,"recipients":[{"address":"a@example.test","state":"pending"}]}`
	if err := os.WriteFile(filepath.Join(dir, "env", id), []byte(env), 0o600); err != nil {
		t.Fatal(err)
	}
	envs, err := openSpool(t, dir, durable.OS{}).Recover()
	if err != nil || len(envs) != 0 {
		t.Errorf("Recover = %v, %v; want nothing", envs, err)
	}
	if n := names(t, filepath.Join(dir, "env")); len(n) != 0 {
		t.Errorf("env/ keeps %q", n)
	}
}

// TestStoreFailureLeavesNothing: when Store fails the MTA answers 4xx and
// the client retries, so the spool must not keep the message either;
// otherwise it is delivered twice, or blocks the next start.
func TestStoreFailureLeavesNothing(t *testing.T) {
	inDir := func(sub string) func(string) bool {
		return func(dir string) bool { return filepath.Base(dir) == sub }
	}
	isMsgTmp := func(p string) bool { return strings.HasSuffix(p, ".msg") }
	small, large := "message", strings.Repeat("x", 2<<20) // in the log; a file of its own
	tests := []struct {
		name    string
		fs      durable.FS
		message string
		wantErr error
	}{
		{"ENOSPC writing the log", &faultFS{writeErr: syscall.ENOSPC}, small, syscall.ENOSPC},
		{"EDQUOT writing the log", &faultFS{writeErr: syscall.EDQUOT}, small, syscall.EDQUOT},
		{"fsync of the log", &faultFS{failSync: true}, small, errInjected},
		{"ENOSPC writing a large message", &faultFS{writeErr: syscall.ENOSPC}, large, syscall.ENOSPC},
		{"creating a large message's file", &faultFS{failCreate: isMsgTmp}, large, errInjected},
		{"flush of a large message", &faultFS{failSyncFS: true}, large, errInjected},
		// Without a whole-filesystem flush the folder is fsynced.
		{"fsync of msg/", dirOnlyFS{&faultFS{failSyncDir: inDir("msg")}}, large, errInjected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			openSpool(t, dir, durable.OS{}) // make the folders with the real FS
			s := openSpool(t, dir, tt.fs)
			env := newEnvelope(time.Now(), "a@example.test")
			err := s.Store(env, strings.NewReader(tt.message))
			// mta.storeError maps ENOSPC/EDQUOT to 452, so they must stay visible.
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Store err = %v, want %v", err, tt.wantErr)
			}
			if s.Has(env.ID) {
				t.Error("the failed Store left the message queued")
			}
			// Data without a record is not queued, and Recover drops it.
			for _, sub := range []string{"env", "tmp"} {
				if n := names(t, filepath.Join(dir, sub)); len(n) != 0 {
					t.Errorf("%s/ after a failed Store: %q", sub, n)
				}
			}
			if envs, err := openSpool(t, dir, durable.OS{}).Recover(); err != nil || len(envs) != 0 {
				t.Errorf("Recover after a failed Store = %v, %v; want no envelope", envs, err)
			}
			if n := names(t, filepath.Join(dir, "msg")); len(n) != 0 {
				t.Errorf("msg/ after a failed Store and Recover: %q", n)
			}
		})
	}
}
