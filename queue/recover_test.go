package queue_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
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
	if n := names(t, filepath.Join(dir, "msg")); !slices.Equal(n, []string{kept.ID}) {
		t.Errorf("msg/ after Recover: %q, want only %s", n, kept.ID)
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

func TestRecoverDamagedEnvelope(t *testing.T) {
	tests := []struct {
		name, env string
		withMsg   bool
		want      string
	}{
		{"bad JSON", `{"id": "trunc`, true, "damaged"},
		{"ID mismatch", `{"id":"0123456789BCDFGH"}`, true, "damaged"},
		{"no message data", "", false, "no message data"},
		{"no recipients", "{\"id\":\"ID\"}", true, "no recipients"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			openSpool(t, dir, durable.OS{})
			id := queue.NewID(time.Now())
			envJSON := strings.ReplaceAll(tt.env, "ID", id)
			if envJSON == "" {
				envJSON = `{"id":"` + id + `","recipients":[{"address":"b@example.test","state":"pending","attempts":1}]}`
			}
			os.WriteFile(filepath.Join(dir, "env", id), []byte(envJSON), 0o600)
			if tt.withMsg {
				os.WriteFile(filepath.Join(dir, "msg", id), []byte("x"), 0o600)
			}
			_, err := openSpool(t, dir, durable.OS{}).Recover()
			// The admin must learn which file to move away.
			if err == nil || !strings.Contains(err.Error(), id) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Recover error = %v, want one naming %s and saying %q", err, id, tt.want)
			}
		})
	}
}

func TestSpoolModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "queue")
	s := openSpool(t, dir, durable.OS{})
	for _, d := range []string{"", "tmp", "msg", "env"} {
		st, err := os.Stat(filepath.Join(dir, d))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o700 {
			t.Errorf("%s/ mode = %v, want 0700", d, st.Mode().Perm())
		}
	}
	env := newEnvelope(time.Now(), "a@example.test")
	if err := s.Store(env, strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"msg/" + env.ID, "env/" + env.ID} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", f, st.Mode().Perm())
		}
	}
}

func TestInvalidIDRefused(t *testing.T) {
	s := openSpool(t, t.TempDir(), durable.OS{})
	env := &queue.Envelope{ID: "../../etc/passwd"}
	if err := s.Store(env, strings.NewReader("x")); err == nil {
		t.Error("Store accepted an invalid ID")
	}
	if f, err := s.OpenMessage("../env/x"); err == nil {
		f.Close()
		t.Error("OpenMessage accepted an invalid ID")
	}
}

// An envelope without data that was never attempted is a Store cut
// short by a crash between the two files' renames: never acknowledged,
// so Recover drops it. Once attempted, missing data is damage (above).
func TestRecoverDropsUnfinishedStore(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, durable.OS{})
	env := newEnvelope(time.Now(), "a@example.test")
	if err := s.Store(env, strings.NewReader("x\r\n")); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "msg", env.ID))
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
	isEnvTmp := func(p string) bool { return strings.HasSuffix(p, ".env") }
	tests := []struct {
		name    string
		fs      *faultFS
		wantErr error
	}{
		{"ENOSPC writing data", &faultFS{writeErr: syscall.ENOSPC}, syscall.ENOSPC},
		{"EDQUOT writing data", &faultFS{writeErr: syscall.EDQUOT}, syscall.EDQUOT},
		{"creating envelope", &faultFS{failCreate: isEnvTmp}, errInjected},
		{"fsync of msg/", &faultFS{failSyncDir: inDir("msg")}, errInjected},
		{"fsync of env/", &faultFS{failSyncDir: inDir("env")}, errInjected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			openSpool(t, dir, durable.OS{}) // make the folders with the real FS
			s := openSpool(t, dir, tt.fs)
			env := newEnvelope(time.Now(), "a@example.test")
			err := s.Store(env, strings.NewReader("message"))
			// mta.storeError maps ENOSPC/EDQUOT to 452, so they must stay visible.
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Store err = %v, want %v", err, tt.wantErr)
			}
			// Data without an envelope is not queued, and Recover drops
			// it; an envelope is a committed message.
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
