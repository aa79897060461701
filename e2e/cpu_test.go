package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is the kernel's USER_HZ, the unit of /proc/PID/stat times.
const clockTick = 10 * time.Millisecond

// procStat is what the benchmarks read of /proc/PID/stat.
type procStat struct {
	comm string
	ppid int
	cpu  time.Duration // user + system
}

func readProcStat(pid int) (procStat, bool) {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, false
	}
	// pid (comm) state ppid ... utime stime: comm may hold spaces.
	open, end := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
	fields := strings.Fields(string(stat[end+1:]))
	if open < 0 || len(fields) < 13 {
		return procStat{}, false
	}
	ppid, _ := strconv.Atoi(fields[1])
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return procStat{string(stat[open+1 : end]), ppid, time.Duration(utime+stime) * clockTick}, true
}

// CPU returns the CPU time used so far by the stack's processes, by
// name: the supervisor ("postline"), each daemon ("postline-mta"...) and
// each plugin, a plugin counted under "plugins" for its daemon, e.g.
// "postline-mta plugins".
func (s *Stack) CPU() map[string]time.Duration {
	top := s.cmd.Process.Pid
	stats := map[int]procStat{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			if st, ok := readProcStat(pid); ok {
				stats[pid] = st
			}
		}
	}
	cpu := map[string]time.Duration{}
	for _, st := range stats {
		switch parent := stats[st.ppid]; {
		case st.ppid == top:
			cpu[st.comm] += st.cpu
		case parent.ppid == top:
			cpu[parent.comm+" plugins"] += st.cpu
		}
	}
	if st, ok := stats[top]; ok {
		cpu["postline"] = st.cpu
	}
	return cpu
}

// reportCPU reports, per message, the CPU time each of the stack's
// processes used since before (a CPU() reading).
func (s *Stack) reportCPU(b interface {
	ReportMetric(float64, string)
}, before map[string]time.Duration, n int) {
	for name, d := range s.CPU() {
		used := d - before[name]
		if used > 0 && n > 0 {
			b.ReportMetric(float64(used.Microseconds())/float64(n), "µs-cpu/msg:"+strings.ReplaceAll(name, " ", "-"))
		}
	}
}
