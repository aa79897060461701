package crashtest_test

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"postline/durable/crashtest"
	"postline/queue"
)

// acks is what a workload acknowledged before a crash point.
type acks struct {
	stored, removing map[string]bool   // removing: done, may be gone
	updated          map[string]string // the recipients' states last acknowledged
	copies           [][2]string       // queue ID, Maildir key
}

func parseAcks(labels []string) acks {
	a := acks{stored: map[string]bool{}, updated: map[string]string{}, removing: map[string]bool{}}
	for _, l := range labels {
		f := strings.Fields(l)
		switch f[0] {
		case "stored":
			a.stored[f[1]] = true
		case "updated":
			a.updated[f[1]] = f[2]
		case "removing":
			a.removing[f[1]] = true
		case "copy":
			if len(f) == 3 { // else a 250 without ENVID: no queue ID to check
				a.copies = append(a.copies, [2]string{f[1], f[2]})
			}
		}
	}
	return a
}

// outcome is what exploring one workload's trace found.
type outcome struct {
	stats      crashtest.Stats
	violations int            // states that broke a rule
	rules      map[string]int // states that broke each rule ("rule 1"...)
	first      string         // the first violation's report
}

// explore visits the crash states of the rig's trace and checks each;
// withMDA also recovers the MDA and delivers again what is queued.
func (r *rig) explore(lim crashtest.Limits, seed uint64, withMDA bool) outcome {
	ops := r.trace.Ops()
	var out outcome
	rnd := rand.New(rand.NewPCG(seed, seed))
	stats, err := crashtest.Explore(ops, r.vols(), lim, rnd, func(st *crashtest.State) error {
		if err := st.Materialize(); err != nil {
			return err
		}
		if v := r.check(st, withMDA); len(v) > 0 {
			out.violations++
			out.countRules(v)
			if out.first == "" {
				out.first = r.report(ops, st, v)
			}
		}
		return nil
	})
	if err != nil {
		r.t.Fatalf("explore: %v", err)
	}
	out.stats = stats
	return out
}

// countRules adds one state's violations to the counts by rule.
func (o *outcome) countRules(violations []string) {
	if o.rules == nil {
		o.rules = map[string]int{}
	}
	seen := map[string]bool{}
	for _, v := range violations {
		rule, _, _ := strings.Cut(v, ":")
		if !seen[rule] {
			seen[rule] = true
			o.rules[rule]++
		}
	}
}

// report is a violation's account: the trace up to the crash point, the
// state on disk, and the rules it broke.
func (r *rig) report(ops []crashtest.Op, st *crashtest.State, violations []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "crash after operation %d of %d; trace up to the crash point:\n", st.At, len(ops))
	for i, op := range ops[:st.At] {
		fmt.Fprintf(&b, "  %s\n", r.trace.Format(i, op))
	}
	fmt.Fprintf(&b, "state on disk after the crash:\n%s\nbroken:\n  %s", st.Describe(r.base), strings.Join(violations, "\n  "))
	return b.String()
}

// check runs the daemons' recovery on a crashed state and returns the
// rules it breaks:
//  1. a message whose Store returned is queued, as acknowledged, or delivered;
//  2. a copy answered 250 is in new/ or cur/ with exactly its bytes;
//  3. after recovery and redelivery, no recipient has two copies;
//  4. nothing cut short is queued or delivered; recovery always starts.
func (r *rig) check(st *crashtest.State, withMDA bool) []string {
	a := parseAcks(st.Acked)
	// Recovery writes through volumes of a trace of its own: recorded
	// nowhere that matters, and never flushed for real (no need).
	scratch := crashtest.NewTrace(r.base)
	spool, err := queue.OpenWith(r.queue.Root, scratch.NewVolume("queue", r.queue.Root), spoolOptions)
	if err != nil {
		return []string{"rule 4: the MTA's spool does not open: " + err.Error()}
	}
	defer spool.Close()
	envs, err := spool.Recover()
	if err != nil {
		return []string{"rule 4: the MTA's recovery refuses to start: " + err.Error()}
	}
	var v []string
	// A power cut alone never damages an envelope: one set aside would
	// be an alarm for the admin after every crash.
	if _, damaged := spool.Recovered(); len(damaged) > 0 {
		v = append(v, fmt.Sprintf("rule 4: envelopes set aside as damaged after a power cut: %v", damaged))
	}
	queued := map[string]*queue.Envelope{}
	for _, env := range envs {
		queued[env.ID] = env
		v = append(v, r.checkQueued(spool, env, a)...)
	}
	copies := r.countCopies(&v)
	for _, c := range a.copies {
		v = append(v, r.checkCopy(c[0], c[1])...)
	}
	for _, id := range r.order {
		gone := a.removing[id] || (withMDA && r.delivered(copies, id))
		if a.stored[id] && queued[id] == nil && !gone {
			v = append(v, fmt.Sprintf("rule 1: message %s was acknowledged (Store returned) but is neither queued nor delivered", id))
		}
	}
	if withMDA && len(v) == 0 {
		v = append(v, r.redeliver(scratch, envs, a)...)
	}
	return v
}

// checkQueued checks one recovered message against what was stored.
func (r *rig) checkQueued(spool *queue.Spool, env *queue.Envelope, a acks) []string {
	m := r.msgs[env.ID]
	if m == nil {
		return []string{"rule 4: an envelope no workload wrote is queued: " + env.ID}
	}
	var v []string
	f, err := spool.OpenMessage(env.ID)
	if err != nil {
		return []string{fmt.Sprintf("rule 4: message %s is queued without its data: %v", env.ID, err)}
	}
	data, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(data, m.data) {
		v = append(v, fmt.Sprintf("rule 4: message %s is queued with %d bytes, not its %d", env.ID, len(data), len(m.data)))
	}
	var addrs []string
	for _, rc := range env.Recipients {
		addrs = append(addrs, rc.Address)
	}
	if env.From != m.from || !slices.Equal(addrs, m.rcpts) {
		v = append(v, fmt.Sprintf("rule 4: message %s is queued with envelope %s -> %v, not %s -> %v", env.ID, env.From, addrs, m.from, m.rcpts))
	}
	var states []string
	for _, rc := range env.Recipients {
		states = append(states, string(rc.State))
	}
	// A later update may have reached the disk unacknowledged; what an
	// acknowledged one settled must stay settled.
	want := strings.Split(a.updated[env.ID], ",")
	for i, w := range want {
		if w != "" && w != string(queue.Pending) && (i >= len(states) || states[i] != w) {
			v = append(v, fmt.Sprintf("rule 1: message %s is queued with recipients %v, not as last acknowledged: %v", env.ID, states, want))
			break
		}
	}
	return v
}

// mailbox is the Maildir of address.
func (r *rig) mailbox(address string) string {
	local, _, _ := strings.Cut(address, "@")
	return filepath.Join(r.mail.Root, domain, local)
}

// countCopies counts the copies of each message in each mailbox (new/ and
// cur/), by content; a file that is no whole message breaks rule 4.
func (r *rig) countCopies(v *[]string) map[string]int {
	copies := map[string]int{}
	for _, user := range mailboxes {
		for _, sub := range []string{"new", "cur"} {
			dir := filepath.Join(r.mailbox(user+"@"+domain), sub)
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				data, err := os.ReadFile(filepath.Join(dir, e.Name()))
				id, ok := r.byCopy[string(data)]
				if err != nil || !ok {
					*v = append(*v, fmt.Sprintf("rule 4: %s/%s/%s holds %d bytes that are no whole message", user, sub, e.Name(), len(data)))
					continue
				}
				copies[id+" "+user+"@"+domain]++
			}
		}
	}
	return copies
}

// checkCopy checks that the copy answered 250 as key is in one of its
// recipients' Maildirs with exactly its bytes.
func (r *rig) checkCopy(id, key string) []string {
	m := r.msgs[id]
	if m == nil {
		return []string{fmt.Sprintf("rule 2: a 250 for message %s, which no workload sent", id)}
	}
	for _, rcpt := range m.rcpts {
		for _, sub := range []string{"new", "cur"} {
			names, _ := filepath.Glob(filepath.Join(r.mailbox(rcpt), sub, key+"*"))
			for _, name := range names {
				data, _ := os.ReadFile(name)
				if bytes.Equal(data, m.copy) {
					return nil
				}
				return []string{fmt.Sprintf("rule 2: copy %s of message %s answered 250 holds %d bytes, not its %d", key, id, len(data), len(m.copy))}
			}
		}
	}
	return []string{fmt.Sprintf("rule 2: copy %s of message %s was answered 250 and is in no Maildir", key, id)}
}

// delivered reports whether every recipient of id has a copy.
func (r *rig) delivered(copies map[string]int, id string) bool {
	for _, rcpt := range r.msgs[id].rcpts {
		if copies[id+" "+rcpt] == 0 {
			return false
		}
	}
	return true
}

// redeliver starts the MDA on the crashed state (its ledger recovered as
// postline-mda does), delivers every queued message's pending recipients
// again, and checks that each acknowledged message now has exactly one
// copy per recipient and no message has two.
func (r *rig) redeliver(scratch *crashtest.Trace, envs []*queue.Envelope, a acks) []string {
	srv, err := r.startMDA(scratch.NewVolume("mail", r.mail.Root), scratch.NewVolume("state", r.state.Root), nil)
	if err != nil {
		return []string{"rule 4: the MDA's recovery refuses to start: " + err.Error()}
	}
	var v []string
	for _, env := range envs {
		res, err := srv.deliver(r.msgs[env.ID], env)
		if err != nil {
			v = append(v, fmt.Sprintf("redelivery of %s failed: %v", env.ID, err))
		}
		for rcpt, e := range res {
			if e != nil {
				v = append(v, fmt.Sprintf("redelivery of %s to %s: %v", env.ID, rcpt, e))
			}
		}
	}
	srv.stop()
	copies := r.countCopies(&v)
	for _, id := range r.order {
		for _, rcpt := range r.msgs[id].rcpts {
			n := copies[id+" "+rcpt]
			if n > 1 || (n == 0 && a.stored[id]) {
				v = append(v, fmt.Sprintf("rule 3: after recovery and redelivery, %s has %d copies of message %s (acknowledged: %v)", rcpt, n, id, a.stored[id]))
			}
		}
	}
	return v
}
