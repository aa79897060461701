package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"postline/config"
)

// statusCommand is `postline status [--json]`: what the running
// supervisor reports on its status socket.
func statusCommand(cfg *config.Config, args []string) int {
	asJSON := len(args) == 1 && args[0] == "--json"
	if len(args) > 0 && !asJSON {
		fmt.Fprintf(os.Stderr, "postline status: unexpected %q; the only flag is --json\n", args[0])
		return 2
	}
	raw, err := askStatus(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "postline status: %v\n", err)
		return 1
	}
	if asJSON {
		os.Stdout.Write(raw)
		return 0
	}
	var st Status
	if err := json.Unmarshal(raw, &st); err != nil {
		fmt.Fprintf(os.Stderr, "postline status: the supervisor's answer: %v\n", err)
		return 1
	}
	printStatus(os.Stdout, &st, time.Now())
	return 0
}

// askStatus reads the supervisor's answer, saying what to do when there
// is none.
func askStatus(cfg *config.Config) ([]byte, error) {
	sock := cfg.StatusSocket()
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	switch {
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED):
		return nil, fmt.Errorf("postline is not running (nothing listens on %s); start it with `postline -c %s start`", sock, cfg.File)
	case errors.Is(err, syscall.EACCES):
		return nil, fmt.Errorf("cannot connect to %s: permission denied; run this as root", sock)
	case err != nil:
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	return io.ReadAll(c)
}

func printStatus(w io.Writer, st *Status, now time.Time) {
	fmt.Fprintf(w, "postline up %s (since %s), config %s\n", formatAge(now.Sub(st.Started)), st.Started.Format(time.DateTime), st.Config)
	fmt.Fprintf(w, "\n%-6s %8s %10s %9s\n", "daemon", "pid", "up", "restarts")
	for _, d := range st.Daemons {
		fmt.Fprintf(w, "%-6s %8d %10s %9d\n", d.Name, d.PID, formatAge(now.Sub(d.Since)), d.Restarts)
	}
	fmt.Fprintln(w)
	for _, key := range slices.Sorted(maps.Keys(st.Listeners)) {
		fmt.Fprintf(w, "%-16s %s\n", key, strings.Join(st.Listeners[key], ", "))
	}
	printQueueStats(w, st, now)
	printCert(w, st.Certificate, now)
	printProblems(w, st)
}

func printQueueStats(w io.Writer, st *Status, now time.Time) {
	q := st.Queue
	if q == nil {
		fmt.Fprintf(w, "\nqueue: unknown (%s)\n", st.QueueError)
		return
	}
	fmt.Fprintf(w, "\nqueue: %d %s (%d active, %d due, %d deferred, %d parked)", q.Messages, plural(q.Messages, "message"), q.Active, q.Due, q.Deferred, q.Parked)
	if q.Messages > 0 {
		fmt.Fprintf(w, ", the oldest %s old", formatAge(now.Sub(q.Oldest)))
	}
	fmt.Fprintf(w, "\nsince the MTA started %s ago: %d queued, %d delivered, %d deferred, %d failed, %d bounced\n",
		formatAge(now.Sub(q.Since)), q.Queued, q.Delivered, q.Deferred, q.Failed, q.Bounced)
}

func printCert(w io.Writer, c *CertStatus, now time.Time) {
	switch {
	case c == nil:
	case c.Error != "":
		fmt.Fprintf(w, "certificate %s: %s\n", c.File, c.Error)
	default:
		self := ""
		if c.SelfSigned {
			self = " (self-signed: mail clients will warn)"
		}
		fmt.Fprintf(w, "certificate: %s, issued by %s%s, expires %s (in %s)\n",
			c.Subject, c.Issuer, self, c.NotAfter.Format(time.DateOnly), formatAge(c.NotAfter.Sub(now)))
	}
}

func printProblems(w io.Writer, st *Status) {
	lines := problemLines("postline", st.Problems)
	for _, d := range st.Daemons {
		lines = append(lines, problemLines(d.Name, d.Problems)...)
	}
	if len(lines) == 0 {
		fmt.Fprintln(w, "\nno warnings or errors")
		return
	}
	fmt.Fprintln(w, "\nlast warnings and errors:")
	slices.Sort(lines) // by time: each line starts with it
	for _, l := range lines {
		fmt.Fprintln(w, "  "+l)
	}
}

func problemLines(who string, ps []Problem) []string {
	var out []string
	for _, p := range ps {
		out = append(out, clean(fmt.Sprintf("%s %-8s %-5s %s %s", p.Time.Format(time.DateTime), who, p.Level, p.Message, p.Detail)))
	}
	return out
}
