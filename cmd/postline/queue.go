package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"postline/config"
	"postline/dsn"
	"postline/mta"
	"postline/queue"
)

// adminTimeout bounds one queue command; flushing a large queue writes
// every envelope.
const adminTimeout = time.Minute

// queueCommand runs `postline queue [show ID|flush|delete ID|bounce ID]`
// against the running MTA's admin socket.
func queueCommand(cfg *config.Config, args []string) int {
	var req mta.AdminRequest
	switch {
	case len(args) == 0:
		req.Cmd = "list"
	case len(args) == 1 && args[0] == "flush":
		req.Cmd = "flush"
	case len(args) == 2 && (args[0] == "show" || args[0] == "delete" || args[0] == "bounce"):
		req.Cmd, req.ID = args[0], args[1]
	default:
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	resp, err := mta.AdminCall(cfg.MTAAdminSocket(), req, adminTimeout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "postline: %s: %v\n", strings.Join(append([]string{"queue"}, args...), " "), explainDial(cfg, err))
		return 1
	}
	switch req.Cmd {
	case "list":
		printQueue(os.Stdout, resp.Envelopes, time.Now())
	case "show":
		printShow(os.Stdout, resp, time.Now())
	case "flush":
		fmt.Printf("flushed %d %s\n", resp.Count, plural(resp.Count, "recipient"))
	case "delete":
		fmt.Printf("deleted %s\n", req.ID)
	case "bounce":
		if len(resp.Envelopes) == 1 && resp.Envelopes[0].From == "" {
			fmt.Printf("deleted %s: its sender is <>, so no bounce was sent\n", req.ID)
		} else if len(resp.Envelopes) == 1 {
			fmt.Printf("returned %s to %s\n", req.ID, clean(resp.Envelopes[0].From))
		}
	}
	return 0
}

// explainDial turns a failure to reach the socket into what to do.
func explainDial(cfg *config.Config, err error) error {
	sock := cfg.MTAAdminSocket()
	switch {
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("the MTA is not running (nothing listens on %s); start postline with `postline -c %s start`",
			sock, cfg.File)
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("cannot connect to %s: permission denied; run this as root or as the mta user", sock)
	}
	return err
}

// printQueue lists envs like mailq: a line per message, then an
// indented line per recipient.
func printQueue(w io.Writer, envs []*queue.Envelope, now time.Time) {
	if len(envs) == 0 {
		fmt.Fprintln(w, "the queue is empty")
		return
	}
	pending := 0
	for _, env := range envs {
		fmt.Fprintf(w, "%s  %s  %s  from %s\n", env.ID, formatAge(now.Sub(env.Received)),
			formatSize(env.Size), sender(env.From))
		for _, r := range env.Recipients {
			fmt.Fprintf(w, "    %s\n", recipientLine(r, now))
			if r.State == queue.Pending {
				pending++
			}
		}
	}
	fmt.Fprintf(w, "-- %d %s, %d %s pending\n", len(envs), plural(len(envs), "message"),
		pending, plural(pending, "recipient"))
}

// recipientLine is one recipient: state, address, attempts, when the
// next attempt is due (pending only) and the last error.
func recipientLine(r *queue.Recipient, now time.Time) string {
	line := fmt.Sprintf("%-9s  %s  attempts %d", r.State, clean(r.Address), r.Attempts)
	if r.State == queue.Pending {
		if wait := r.NextAttempt.Sub(now); wait > 0 {
			line += "  next in " + formatAge(wait)
		} else {
			line += "  next now"
		}
	}
	if r.LastError != "" {
		line += "  last error: " + clean(r.LastError)
	}
	return line
}

// printShow prints one message's envelope, then its header block.
func printShow(w io.Writer, resp *mta.AdminResponse, now time.Time) {
	if len(resp.Envelopes) != 1 || resp.Envelopes[0] == nil {
		return
	}
	env := resp.Envelopes[0]
	row := func(name, value string) { fmt.Fprintf(w, "%-11s %s\n", name, value) }
	row("id", env.ID)
	row("received", fmt.Sprintf("%s (%s ago)", env.Received.Local().Format(time.RFC1123Z), formatAge(now.Sub(env.Received))))
	row("size", formatSize(env.Size))
	row("from", sender(env.From))
	if env.AuthUser != "" {
		row("auth user", clean(env.AuthUser))
	}
	row("relay", map[bool]string{true: "yes (may go to other domains)", false: "no (local domains only)"}[env.Relay])
	if env.Body8Bit || env.SMTPUTF8 {
		row("body", fmt.Sprintf("8bitmime %v, smtputf8 %v", env.Body8Bit, env.SMTPUTF8))
	}
	if env.RequireTLS {
		row("requiretls", "yes: only verified TLS to next hops that offer REQUIRETLS, else it bounces")
	}
	if env.Return != "" || env.EnvID != "" {
		row("dsn", strings.TrimSpace(param("RET", env.Return)+param("ENVID", env.EnvID)))
	}
	fmt.Fprintln(w, "recipients")
	for _, r := range env.Recipients {
		fmt.Fprintf(w, "    %s\n", recipientLine(r, now))
		if line := dsnLine(r); line != "" {
			fmt.Fprintf(w, "        dsn: %s\n", line)
		}
		if r.TLS != "" {
			fmt.Fprintf(w, "        tls: %s\n", clean(r.TLS))
		}
	}
	fmt.Fprintln(w)
	for _, line := range strings.SplitAfter(strings.ReplaceAll(resp.Headers, "\r\n", "\n"), "\n") {
		fmt.Fprint(w, clean(line))
	}
}

// dsnLine is r's DSN request (RFC 3461) and whether its delay warning
// went out; "" when there is nothing to say.
func dsnLine(r *queue.Recipient) string {
	line := param("NOTIFY", r.Notify) + param("ORCPT", r.ORcpt)
	switch {
	case r.Warned && dsn.Notify(r.Notify).Wants(dsn.ActionDelayed):
		line += " delay warning sent"
	case r.Warned:
		line += " delay warning not asked for"
	}
	return strings.TrimSpace(line)
}

// param is " NAME=value" for a value that was given, else "".
func param(name, value string) string {
	if value == "" {
		return ""
	}
	return " " + name + "=" + clean(value)
}

func sender(from string) string {
	if from == "" {
		return "<>"
	}
	return clean(from)
}

// clean replaces control characters (but tab and line feed) with "?",
// so that a header or a remote server's reply cannot send escape
// sequences to the administrator's terminal.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' && r != '\n' || r == 0x7f || r >= 0x80 && r < 0xa0 {
			return '?'
		}
		return r
	}, s)
}

// formatAge is a duration in its two largest units: "42s", "3m12s",
// "5h3m", "2d4h".
func formatAge(d time.Duration) string {
	d = max(d, 0).Round(time.Second)
	day := 24 * time.Hour
	switch {
	case d >= day:
		return fmt.Sprintf("%dd%dh", d/day, d%day/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh%dm", d/time.Hour, d%time.Hour/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%dm%ds", d/time.Minute, d%time.Minute/time.Second)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

func formatSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
