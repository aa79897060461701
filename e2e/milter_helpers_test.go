package e2e

// The real milters of the milter tests, each started in the foreground
// on a random loopback address for one test: rspamd (its proxy worker in
// milter mode, scanning itself) and OpenDKIM.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startRspamd runs rspamd with Debian's rules and a config of the test's:
// its DNS is dnsAddr (the test's server), its headers X-Spamd-Result and
// Authentication-Results, no fuzzy storage (on the internet), and a short
// list of top-level domains: compiling the public suffix list (without
// hyperscan, whose compile of the rules costs as much) takes 15 s. It
// returns the milter's "inet:IP:port".
func startRspamd(t testing.TB, dnsAddr string) *milterDaemon {
	t.Helper()
	bin := requireProgram(t, "rspamd")
	dir := t.TempDir()
	ip := randomLoopback()
	files := map[string]string{
		"override.d/worker-proxy.inc":      fmt.Sprintf("bind_socket = %q;\nmilter = yes;\ntimeout = 120s;\nupstream \"local\" { default = yes; self_scan = yes; }\ncount = 1;\n", ip+":11332"),
		"override.d/worker-normal.inc":     fmt.Sprintf("bind_socket = %q;\ncount = 1;\n", ip+":11333"),
		"override.d/worker-controller.inc": fmt.Sprintf("bind_socket = %q;\ncount = 1;\n", ip+":11334"),
		"override.d/logging.inc":           "type = \"console\";\nlevel = \"notice\";\n",
		"override.d/options.inc": fmt.Sprintf("dns { nameserver = [%q]; timeout = 1s; retransmits = 1; }\n"+
			"disable_hyperscan = true;\nurl_tld = %q;\n", dnsAddr, filepath.Join(dir, "tld.dat")),
		"tld.dat":                     "test\nexample\ncom\norg\nnet\n",
		"override.d/fuzzy_check.conf": "enabled = false;\n",
		"local.d/milter_headers.conf": "use = [\"x-spamd-result\", \"authentication-results\"];\nskip_local = false;\n", // clients are on loopback
	}
	for name, text := range files {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755)
		writeAt(t, filepath.Join(dir, name), text)
	}
	os.MkdirAll(filepath.Join(dir, "db"), 0o755)
	u, _ := user.Current()
	cmd := exec.Command(bin, "-f", "-i", "-u", u.Username, "-g", groupName(t, u),
		"--var=LOCAL_CONFDIR="+dir, "--var=RUNDIR="+dir, "--var=DBDIR="+filepath.Join(dir, "db"), "--var=LOGDIR="+dir)
	return runMilterDaemon(t, cmd, ip+":11332")
}

func groupName(t testing.TB, u *user.User) string {
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		t.Fatal(err)
	}
	return g.Name
}

// startOpenDKIM runs OpenDKIM with the lines of conf added to a config
// that keeps it in the foreground on a random loopback address, and
// returns the milter's "inet:IP:port".
func startOpenDKIM(t *testing.T, conf string) *milterDaemon {
	t.Helper()
	bin := requireProgram(t, "opendkim")
	dir := safeTempDir(t)
	ip := randomLoopback()
	file := filepath.Join(dir, "opendkim.conf")
	writeAt(t, file, fmt.Sprintf("Socket inet:8891@%s\nPidFile %s\nSyslog no\nBackground no\nLogWhy yes\n%s",
		ip, filepath.Join(dir, "opendkim.pid"), conf))
	cmd := exec.Command(bin, "-f", "-x", file)
	return runMilterDaemon(t, cmd, ip+":8891")
}

// milterDaemon is a milter the test started.
type milterDaemon struct {
	Addr   string // "inet:IP:port", as the plugin's config names it
	cmd    *exec.Cmd
	exited chan struct{}
}

// Stop kills the milter, with the workers it forked (its process
// group), and waits for it to exit.
func (m *milterDaemon) Stop() {
	syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
	<-m.exited
}

// safeTempDir is a temporary folder none of whose parents other users
// may write, as OpenDKIM wants for its config and keys (/tmp will not do).
func safeTempDir(t *testing.T) string {
	t.Helper()
	base, err := os.UserCacheDir()
	if err == nil {
		base = filepath.Join(base, "postline-tests")
		err = os.MkdirAll(base, 0o700)
	}
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(base, "milter-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// runMilterDaemon starts cmd and waits until addr takes connections; the
// process is killed when the test ends, its output shown if it failed.
func runMilterDaemon(t testing.TB, cmd *exec.Cmd, addr string) *milterDaemon {
	t.Helper()
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second // a forked worker may hold the output pipe
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	m := &milterDaemon{Addr: "inet:" + addr, cmd: cmd, exited: exited}
	t.Cleanup(func() {
		m.Stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(cmd.Path), out)
		}
	})
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatalf("%s exited: %s", cmd.Path, out)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return m
		}
	}
	t.Fatalf("%s does not listen on %s: %s", cmd.Path, addr, out)
	return nil
}

// milterPlugin is a [[plugins]] table for the milter bridge.
func milterPlugin(name, daemon string, milters ...string) string {
	return fmt.Sprintf("\n[[plugins]]\nname = %q\nprogram = \"milter\"\ndaemon = %q\ntimeout = \"30s\"\n[plugins.config]\nmilters = [\"%s\"]\n",
		name, daemon, strings.Join(milters, `", "`))
}

// CPU is the CPU time the milter and the workers it forked used so far.
func (m *milterDaemon) CPU() time.Duration {
	top := m.cmd.Process.Pid
	var sum time.Duration
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readProcStat(pid); ok && (pid == top || st.ppid == top) {
			sum += st.cpu
		}
	}
	return sum
}
