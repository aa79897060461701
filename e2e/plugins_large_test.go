package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Shape of the large message: largeLines lines of 78 octets plus CRLF,
// 50 MiB of body in all.
const (
	largeLineLen = 78
	largeLines   = (50 << 20) / (largeLineLen + 2)
	largeBody    = largeLines * (largeLineLen + 2)
)

// largeLine writes line i of the large body, without its line end, into
// buf: its number, then letters that shift from line to line.
func largeLine(buf []byte, i int) []byte {
	buf = fmt.Appendf(buf, "%08d ", i)
	for j := 0; len(buf) < largeLineLen; j++ {
		buf = append(buf, byte('a'+(i+j)%26))
	}
	return buf
}

// writeLargeBody writes the large body with CRLF line ends to w, 64 KiB
// at a time, and returns the SHA-256 of the same body with LF line ends,
// as the Maildir keeps it.
func writeLargeBody(w io.Writer) ([]byte, error) {
	lf := sha256.New()
	chunk := make([]byte, 0, 64<<10+largeLineLen+2)
	var line []byte
	for i := range largeLines {
		line = largeLine(line[:0], i)
		lf.Write(line)
		lf.Write([]byte{'\n'})
		chunk = append(append(chunk, line...), '\r', '\n')
		if len(chunk) >= 64<<10 || i == largeLines-1 {
			if _, err := w.Write(chunk); err != nil {
				return nil, err
			}
			chunk = chunk[:0]
		}
	}
	return lf.Sum(nil), nil
}

// peakRSS returns the peak resident set size (VmHWM) of pid in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	return int64(procStatusKB(t, pid, "VmHWM")) << 10
}

// pluginPID returns the PID of the running process of plugin name in the
// daemon svc, from the last "plugin started" or "plugin restarted" line.
func pluginPID(t *testing.T, s *Stack, svc, name string) int {
	t.Helper()
	re := regexp.MustCompile(`"svc":"` + svc + `","plugin":"` + name + `","pid":(\d+),[^\n]*"message":"plugin (?:re)?started"`)
	m := re.FindAllStringSubmatch(s.Log(), -1)
	if m == nil {
		t.Fatalf("no pid for plugin %s of the %s in the log", name, svc)
	}
	pid, _ := strconv.Atoi(m[len(m)-1][1])
	return pid
}

// parentPID reads the parent of pid from /proc/PID/stat.
func parentPID(t *testing.T, pid int) int {
	t.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// pid (comm) state ppid ...: comm may hold spaces, so cut at its ')'.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	ppid, _ := strconv.Atoi(fields[1])
	return ppid
}

// TestPluginLarge50MB sends a 50 MiB message through a data plugin that
// reads the whole body (counter): from the internet to the MTA, then as
// a submission to the MSA. Each daemon spills the message to a file and
// streams it to the plugin, so neither process holds the message in
// memory: their peak RSS stays far below its size.
func TestPluginLarge50MB(t *testing.T) {
	if testing.Short() {
		t.Skip("50 MiB through a plugin: skipped with -short")
	}
	t.Parallel()
	counter := testPlugin(t, "counter")
	s := StartStackWith(t, StackConfig{
		TopLevel: fmt.Sprintf("max_message_size = %d\n", 64<<20),
		Plugins: fmt.Sprintf(`
[[plugins]]
name = "counter"
path = %[1]q
daemon = "mta"
hooks = ["data"]
timeout = "2m"

[[plugins]]
name = "counter"
path = %[1]q
daemon = "msa"
hooks = ["data"]
timeout = "2m"
`, counter)})

	t.Run("mta", func(t *testing.T) {
		largeThroughPlugin(t, s, "mta", "large inbound", func() *smtp.Client {
			c, err := smtp.Dial(s.MTA)
			if err != nil {
				t.Fatal(err)
			}
			return c
		})
	})
	t.Run("msa", func(t *testing.T) {
		largeThroughPlugin(t, s, "msa", "large submission", func() *smtp.Client {
			c, err := smtp.DialStartTLS(s.Submission, &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Auth(sasl.NewPlainClient("", demoUser, demoPassword)); err != nil {
				t.Fatal(err)
			}
			return c
		})
	})
}

// largeThroughPlugin sends the large message to demo on a client from
// dial, waits for its delivery, checks the copy and the peak RSS of the
// daemon svc and of its counter plugin, and logs the figures.
func largeThroughPlugin(t *testing.T, s *Stack, svc, subject string, dial func() *smtp.Client) {
	daemonPID, plugin := s.ChildPID(svc), pluginPID(t, s, svc, "counter")
	if ppid := parentPID(t, plugin); ppid != daemonPID {
		t.Fatalf("plugin pid %d has parent %d, want the %s %d", plugin, ppid, svc, daemonPID)
	}
	daemonBefore, pluginBefore := peakRSS(t, daemonPID), peakRSS(t, plugin)

	start := time.Now()
	c := dial()
	defer c.Close()
	w, err := startData(c, demoUser, []string{demoUser})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, "Subject: "+subject+"\r\nFrom: <"+demoUser+">\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	wantSum, err := writeLargeBody(w)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		t.Fatalf("end of DATA: %v", err)
	}
	queued := time.Since(start)
	c.Quit()
	t.Logf("reply %q after %s", resp.StatusText, queued.Round(time.Millisecond))

	path := waitForLarge(t, filepath.Join(s.Mailbox(demoUser), "new"), subject, 2*time.Minute)
	delivered := time.Since(start)
	checkLargeCopy(t, path, wantSum)

	daemonPeak, pluginPeak := peakRSS(t, daemonPID), peakRSS(t, plugin)
	t.Logf("50 MB through a body plugin: %s peak RSS %.1f MiB, plugin peak RSS %.1f MiB, %.1f s "+
		"(before the message: %s %.1f MiB, plugin %.1f MiB; 250 after %.1f s; mda peak RSS %.1f MiB)",
		svc, mib(daemonPeak), mib(pluginPeak), delivered.Seconds(), svc, mib(daemonBefore), mib(pluginBefore),
		queued.Seconds(), mib(peakRSS(t, s.ChildPID("mda"))))
	// Holding the message once would add its 50 MiB to what the
	// process needed before it came.
	if daemonPeak > 100<<20 || daemonPeak-daemonBefore > 40<<20 {
		t.Errorf("%s peak RSS %.1f MiB, %.1f MiB before the message: is the message held in memory?", svc, mib(daemonPeak), mib(daemonBefore))
	}
	if pluginPeak > 100<<20 || pluginPeak-pluginBefore > 40<<20 {
		t.Errorf("plugin peak RSS %.1f MiB, %.1f MiB before the message: is the body sent in one piece?", mib(pluginPeak), mib(pluginBefore))
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// waitForLarge waits until dir holds a message whose first header
// lines include "Subject: subject" and returns its path; it reads only
// the start of each file.
func waitForLarge(t *testing.T, dir, subject string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 4096)
	for {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			f, err := os.Open(filepath.Join(dir, e.Name()))
			if err != nil {
				continue
			}
			n, _ := io.ReadFull(f, buf)
			f.Close()
			if bytes.Contains(buf[:n], []byte("\nSubject: "+subject+"\n")) {
				return f.Name()
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no message %q in %s after %s", subject, dir, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkLargeCopy reads the delivered copy as a stream: its header must
// carry the counter's X-Body-Bytes with the body's size on the wire
// (CRLF line ends), and its body must be the one sent, with LF line ends.
func checkLargeCopy(t *testing.T, path string, wantSum []byte) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var header strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("header of the delivered copy: %v", err)
		}
		if line == "\n" {
			break
		}
		header.WriteString(line)
	}
	// One count: the MTA runs no plugin on what the MSA passes it.
	if want := fmt.Sprintf("\nX-Body-Bytes: %d\n", largeBody); !strings.Contains("\n"+header.String(), want) ||
		strings.Count(header.String(), "X-Body-Bytes:") != 1 {
		t.Errorf("header lacks one %q:\n%s", strings.TrimSpace(want), header.String())
	}
	sum := sha256.New()
	n, err := io.Copy(sum, br)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(largeBody - largeLines); n != want {
		t.Errorf("delivered body is %d bytes, want %d", n, want)
	}
	if !bytes.Equal(sum.Sum(nil), wantSum) {
		t.Errorf("delivered body differs from the one sent")
	}
	st, _ := f.Stat()
	t.Logf("delivered copy: %d bytes, header %d bytes", st.Size(), header.Len()+1)
}
