package e2e

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// BenchmarkIdleConnections opens 2,000 SMTP connections to the MTA, each
// greeted and then left idle, and reports how much the MTA's resident
// memory grew: what a crowd of slow or idle clients costs (issue 11:
// less than 100 MB). Run it with -benchtime 1x.
func BenchmarkIdleConnections(b *testing.B) {
	const n = 2000
	for range b.N {
		s := StartStackWith(b, StackConfig{Limits: "max_connections = 3000\nmax_connections_per_ip = 3000"})
		pid := s.ChildPID("mta")
		before := procStatusKB(b, pid, "VmRSS")
		conns := make([]net.Conn, 0, n)
		for range n {
			c, err := net.DialTimeout("tcp", s.MTA, 10*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			conns = append(conns, c)
		}
		for _, c := range conns {
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(line, "220 ") {
				b.Fatalf("greeting %q, %v", line, err)
			}
		}
		time.Sleep(time.Second)
		grown := float64(procStatusKB(b, pid, "VmRSS")-before) / 1024
		b.ReportMetric(grown, "mta-rss-growth-MB")
		b.ReportMetric(grown*1024/n, "KB/connection")
		for _, c := range conns {
			c.Close()
		}
		s.stop()
	}
}
