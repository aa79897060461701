package host

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pattern is an endless body that costs no memory to hold.
type pattern struct{}

func (pattern) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = "0123456789abcdef\r\n"[i%18]
	}
	return len(p), nil
}

// vmHWM reads a process's peak resident set size in KiB.
func vmHWM(pid string) (int, error) {
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	for s := bufio.NewScanner(f); s.Scan(); {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("no VmHWM for pid %s", pid)
}

// TestLargeBodyStreams sends a 50 MB body through a plugin that reads and
// counts it, and reports both processes' peak memory.
func TestLargeBodyStreams(t *testing.T) {
	const size = 50 << 20
	c, _ := startChain(t, "mta", spec("counter", "counter", "mta", nil))
	pid := strconv.Itoa(pidOf(t, c, "counter"))
	hostBefore, _ := vmHWM("self")
	plugBefore, _ := vmHWM(pid)
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	start := time.Now()
	got := c.Data(context.Background(), TxInfo{Conn: conn, Size: size}, header(""), io.LimitReader(pattern{}, size))
	took := time.Since(start)
	if len(got.Edits) != 1 || got.Edits[0].Value != strconv.Itoa(size) {
		t.Fatalf("got %+v, want X-Body-Bytes: %d", got, size)
	}

	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	hostAfter, err1 := vmHWM("self")
	plugAfter, err2 := vmHWM(pid)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	t.Logf("50 MiB body in %s (%.0f MiB/s)", took.Round(time.Millisecond), float64(size)/(1<<20)/took.Seconds())
	t.Logf("plugin peak RSS (VmHWM): %d KiB after start, %d KiB after the message", plugBefore, plugAfter)
	t.Logf("host peak RSS (VmHWM): %d KiB before, %d KiB after; heap in use %d -> %d KiB, allocated during the call %d KiB",
		hostBefore, hostAfter, before.HeapInuse>>10, after.HeapInuse>>10, (after.TotalAlloc-before.TotalAlloc)>>10)
	// Bounded memory, not timing: neither side may hold the body.
	if plugAfter > 40<<10 || hostAfter-hostBefore > 40<<10 {
		t.Errorf("peak RSS grew as if the body were held: plugin %d KiB, host +%d KiB", plugAfter, hostAfter-hostBefore)
	}
}
