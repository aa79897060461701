package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A deliver plugin that crashes loses no mail: the MDA answers that
// recipient 451 4.7.0, the MTA keeps the message queued, and the plugin,
// restarted, lets the next message through. The return-path entry is
// pointed at the panicky test plugin, which panics on "X-Panic".
func TestMDAPluginCrashKeepsMail(t *testing.T) {
	t.Parallel()
	panicky := filepath.Join(binDir, "postline-plugin-panicky")
	build := exec.Command("go", "build", "-o", panicky, "./plugins/host/testdata/panicky")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build panicky: %v\n%s", err, out)
	}
	s := StartStackWith(t, StackConfig{Plugins: fmt.Sprintf(`
[[plugins]]
name = "return-path"
path = %q
on_error = "tempfail"
`, panicky)})

	crash := "Subject: crash\r\nX-Panic: yes\r\n\r\nboom\r\n"
	if _, err := s.Submit(Submission{To: []string{demoUser}, Body: crash}); err != nil {
		t.Fatal(err)
	}
	// The MTA logs the 451 4.7.0 of the crashed plugin as deferred.
	waitLogLine(t, s, `"svc":"mta"`, `"delivery deferred"`, "451 4.7.0", "filter return-path unavailable")
	if entries := queuedEnvelopes(t, s); len(entries) != 1 {
		t.Errorf("queue holds %d messages, want the crashed one", len(entries))
	}

	fine := "Subject: fine\r\n\r\nafter the restart\r\n"
	if _, err := s.Submit(Submission{To: []string{demoUser}, Body: fine}); err != nil {
		t.Fatal(err)
	}
	// panicky replaces return-path here, so no Return-Path is added;
	// the MSA added Message-ID and Date on top.
	got := string(s.WaitForMail(demoUser, 1, 10*time.Second)[0])
	if !strings.HasSuffix(got, "\nSubject: fine\n\nafter the restart\n") || strings.Contains(got, "Return-Path") {
		t.Errorf("got %q", got)
	}
}
