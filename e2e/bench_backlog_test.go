package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"postline/durable"
	"postline/queue"
)

// BenchmarkInboundWithBacklog is BenchmarkInboundToMaildir's load (8
// clients) with a queue that already holds a backlog of deferred
// messages (a remote recipient whose next attempt is an hour away),
// written into the spool before the stack starts, as a restart finds
// them. Beside msgs/s and CPU per message it reports start-ms, the
// time from postline start to "postline started" (the MTA recovers and
// schedules the whole queue first), and the MTA's resident memory.
// Each sub-benchmark builds its backlog anew: run it with -benchtime Nx.
func BenchmarkInboundWithBacklog(b *testing.B) {
	for _, backlog := range []int{0, 100_000} {
		b.Run(fmt.Sprintf("queued=%d", backlog), func(b *testing.B) {
			var filled time.Time
			s := StartStackWith(b, StackConfig{Prepare: func(dir string) {
				fillSpool(b, filepath.Join(dir, "var", "queue"), backlog)
				filled = time.Now()
			}})
			defer s.stop()
			started := time.Since(filled)
			benchStackInbound(b, s, 8)
			b.ReportMetric(float64(started.Milliseconds()), "start-ms") // after benchInbound's ResetTimer
			b.ReportMetric(float64(procStatusKB(b, s.ChildPID("mta"), "VmRSS"))/1024, "mta-rss-MB")
		})
	}
}

// fillSpool queues n deferred messages in the spool at dir, as the MTA
// would have queued them: each tried once, its next attempt an hour away.
func fillSpool(tb testing.TB, dir string, n int) {
	spool, err := queue.Open(dir, durable.OS{})
	if err != nil {
		tb.Fatal(err)
	}
	defer spool.Close()
	now := time.Now()
	data := "Subject: deferred\r\n\r\n" + strings.Repeat("x", 2000) + "\r\n"
	var wg sync.WaitGroup
	for w := range 16 { // concurrent Stores share their flushes
		wg.Go(func() {
			for i := w; i < n; i += 16 {
				env := &queue.Envelope{ID: queue.NewID(now), From: demoUser, Received: now, Relay: true,
					Recipients: []*queue.Recipient{{Address: "someone@backlog.test", State: queue.Pending,
						Attempts: 1, NextAttempt: now.Add(time.Hour), LastError: "451 4.3.0 try later"}}}
				if err := spool.Store(env, strings.NewReader(data)); err != nil {
					tb.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// procStatusKB returns field (VmRSS, VmHWM...) of pid's status, in KiB.
func procStatusKB(tb testing.TB, pid int, field string) int {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + field + `:\s*(\d+) kB$`).FindSubmatch(status)
	if m == nil {
		tb.Fatalf("no %s in /proc/%d/status", field, pid)
	}
	kb, _ := strconv.Atoi(string(m[1]))
	return kb
}

// BenchmarkLargeMessage sends messages of 10 and 50 MiB over plain SMTP
// to the MTA, one at a time, each until it is in the Maildir (connect to
// file in new/), and reports the peak resident memory (VmHWM) of the MTA
// and the MDA.
func BenchmarkLargeMessage(b *testing.B) {
	for _, mib := range []int{10, 50} {
		b.Run(fmt.Sprintf("MiB=%d", mib), func(b *testing.B) {
			s := StartStackWith(b, StackConfig{TopLevel: fmt.Sprintf("max_message_size = %d\n", 64<<20)})
			defer s.stop()
			body := bigMessage("large", mib<<10)
			b.SetBytes(int64(len(body)))
			newDir := filepath.Join(s.Mailbox(demoUser), "new")
			b.ResetTimer()
			for i := range b.N {
				sendInboundTo(b, s.MTA, 1, body)
				waitFiles(b, newDir, i+1, 5*time.Minute)
			}
			b.StopTimer()
			for _, d := range []string{"mta", "mda"} {
				b.ReportMetric(float64(procStatusKB(b, s.ChildPID(d), "VmHWM"))/1024, d+"-peak-MB")
			}
		})
	}
}
