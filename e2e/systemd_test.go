package e2e

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The shipped unit passes `systemd-analyze verify` (with the binary's
// path where the build put it) and keeps its exposure score "OK" or
// better; the README gives the score.
func TestSystemdUnit(t *testing.T) {
	analyze := requireProgram(t, "systemd-analyze")
	unit, err := os.ReadFile("../etc/systemd/postline.service")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "postline.service")
	local := strings.ReplaceAll(string(unit), "/usr/sbin/postline", filepath.Join(binDir, "postline"))
	if err := os.WriteFile(path, []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", path).CombinedOutput(); err != nil || len(out) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err := exec.Command(analyze, "security", "--offline=true", path).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for postline.service: ([0-9.]+) (\S+)`).FindSubmatch(out)
	if err != nil || m == nil || string(m[2]) != "OK" && string(m[2]) != "SAFE" {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	t.Logf("exposure %s %s", m[1], m[2])
}

// Started by systemd with Type=notify (NOTIFY_SOCKET set), postline says
// READY=1 once every daemon is ready, RELOADING=1 and READY=1 around a
// SIGHUP, and STOPPING=1 when told to stop; its daemons do not get the
// socket (NotifyAccess=main).
func TestSystemdNotify(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", socket)
	s := StartStack(t)
	next := func(want string) {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		buf := make([]byte, 256)
		n, err := conn.Read(buf)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("notification %q, %v; want %q", buf[:n], err, want)
		}
	}
	next("READY=1")
	environ, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(s.ChildPID("mta")), "environ"))
	if err != nil || strings.Contains(string(environ), "NOTIFY_SOCKET") {
		t.Errorf("the MTA's environment holds NOTIFY_SOCKET (%v)", err)
	}
	s.cmd.Process.Signal(syscall.SIGHUP)
	next("RELOADING=1")
	next("READY=1")
	s.cmd.Process.Signal(syscall.SIGTERM)
	next("STOPPING=1")
}
