package crashtest_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"postline/durable"
	"postline/durable/crashtest"
	"postline/mda"
	"postline/queue"
)

// totals adds up every exploration of the package's tests, for the last
// line of the run.
var totals struct {
	sync.Mutex
	states, violations int
	workloads          map[string][4]int // states, violations (expected ones included), crash points, points sampled
}

func TestMain(m *testing.M) {
	start := time.Now()
	code := m.Run()
	for _, name := range slices.Sorted(maps.Keys(totals.workloads)) {
		w := totals.workloads[name]
		fmt.Printf("powerloss: %-46s %6d states, %4d violations (%d crash points, %d sampled)\n", name, w[0], w[1], w[2], w[3])
	}
	fmt.Printf("powerloss: seed %d, %d states per crash point at most, %s\n", seed(), statesPerPoint(), time.Since(start).Round(time.Millisecond))
	fmt.Printf("powerloss: %d crash states explored, %d violations\n", totals.states, totals.violations)
	os.Exit(code)
}

// statesPerPoint is POWERLOSS_STATES, the most states built at one
// crash point (64 unless set): a longer run sets more.
func statesPerPoint() int {
	if n, err := strconv.Atoi(os.Getenv("POWERLOSS_STATES")); err == nil && n > 0 {
		return n
	}
	return 64
}

func limits() crashtest.Limits {
	n := statesPerPoint()
	p := int(math.Ceil(math.Sqrt(float64(n))))
	return crashtest.Limits{Prefixes: p, Cuts: max(1, n/p)}
}

// seed is POWERLOSS_SEED, to replay a run, or a new one printed at the end.
var seed = sync.OnceValue(func() uint64 {
	if n, err := strconv.ParseUint(os.Getenv("POWERLOSS_SEED"), 10, 64); err == nil {
		return n
	}
	return uint64(time.Now().UnixNano())
})

// record adds an exploration's figures to the totals and logs them.
func record(t *testing.T, name string, out outcome, wantViolations bool) {
	totals.Lock()
	if totals.workloads == nil {
		totals.workloads = map[string][4]int{}
	}
	group := name
	if i := strings.Index(name, ", flush "); i > 0 {
		group = name[:i] + ", each flush failing"
	}
	if wantViolations {
		group = "planted: " + name
	}
	w := totals.workloads[group]
	totals.workloads[group] = [4]int{w[0] + out.stats.States, w[1] + out.violations, w[2] + out.stats.Points, w[3] + out.stats.Sampled}
	totals.states += out.stats.States
	if !wantViolations {
		totals.violations += out.violations
	}
	totals.Unlock()
	t.Logf("%s: %d crash points, %d states (%d points sampled), %d violations",
		name, out.stats.Points, out.stats.States, out.stats.Sampled, out.violations)
}

// flavours are the two ways the daemons make writes durable: one flush
// of the whole filesystem shared by concurrent writers (syncfs, as on
// Linux), or an fsync of each file and folder (any other filesystem).
var flavours = []struct {
	name   string
	syncfs bool
}{{"syncfs", true}, {"fsync", false}}

// queueWorkload stores n messages from three writers at once, then
// records a delivered recipient in the first third (Update) and removes
// the second third (Remove), marking each acknowledgement.
func queueWorkload(t *testing.T, r *rig, n int) map[string]error {
	r.addMessages(n)
	spool, err := queue.OpenWith(r.queue.Root, r.spoolFS(), spoolOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer spool.Close()
	if _, err := spool.Recover(); err != nil {
		t.Fatal(err)
	}
	r.setupFlushes = r.trace.Flushes()
	failed := r.storeAll(spool, 3)
	for i, id := range r.order {
		if failed[id] != nil {
			continue
		}
		switch i * 3 / n {
		case 0:
			env := r.msgs[id].envelope()
			env.Recipients[0].State, env.Recipients[0].Attempts = queue.Delivered, 1
			if spool.Update(env) == nil {
				r.trace.Mark(updated(env))
			}
		case 1:
			r.trace.Mark("removing " + id)
			spool.Remove(id)
		}
	}
	return failed
}

// recoveryWorkload stores n messages, leaves what a crash leaves behind
// (a file half-written in tmp/, a Store cut short: an envelope whose data
// is short, data without an envelope), then opens the spool again and
// recovers it as postline-mta does at start, and stores one more
// message: the explorer crashes the recovery too.
func recoveryWorkload(t *testing.T, r *rig, n int) {
	r.addMessages(n)
	spool, err := queue.OpenWith(r.queue.Root, r.spoolFS(), spoolOptions)
	if err != nil {
		t.Fatal(err)
	}
	r.storeAll(spool, 3)
	spool.Close()
	cut, orphan := queue.NewID(time.Now()), queue.NewID(time.Now())
	for name, content := range map[string]string{
		"tmp/" + orphan + ".msg": "half a mess",
		"msg/" + orphan:          "data whose envelope never came",
		"msg/" + cut:             "short",
		"env/" + cut:             `{"id":"` + cut + `","size":1000,"crc32c":1,"recipients":[{"address":"alice@example.test","state":"pending"}]}`,
	} {
		path, tmp := filepath.Join(r.queue.Root, name), filepath.Join(r.queue.Root, "tmp", "w"+filepath.Base(name))
		if err := durable.Write(r.queue, tmp, path, 0o600, func(w io.Writer) error {
			_, err := io.WriteString(w, content)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	spool, err = queue.OpenWith(r.queue.Root, r.spoolFS(), spoolOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer spool.Close()
	if _, err := spool.Recover(); err != nil {
		t.Fatal(err)
	}
	r.addMessages(1)
	last := r.msgs[r.order[len(r.order)-1]]
	if err := spool.Store(last.envelope(), bytes.NewReader(last.data)); err != nil {
		t.Fatal(err)
	}
	r.trace.Mark("stored " + last.id)
}

// deliveryWorkload stores n messages, then delivers each to the MDA over
// LMTP as the MTA's queue manager does, two at a time: the MDA writes
// each copy through its ledger into the Maildir; the message is then
// updated with its recipients' results, or removed when none is left.
// It returns the LMTP replies other than 250, by queue ID and recipient.
func deliveryWorkload(t *testing.T, r *rig, n int) (failed map[string]error, refused map[string]*smtp.SMTPError) {
	r.addMessages(n)
	spool, err := queue.OpenWith(r.queue.Root, r.spoolFS(), spoolOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer spool.Close()
	failed = r.storeAll(spool, 3)
	srv, err := r.startMDA(r.maildirFS(), r.state, r.trace.Mark)
	if err != nil {
		t.Fatal(err)
	}
	r.setupFlushes = r.trace.Flushes()
	defer srv.stop()
	var mu sync.Mutex
	refused = map[string]*smtp.SMTPError{}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for _, id := range r.order {
		if failed[id] != nil {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			for rcpt, reply := range r.deliverAndRecord(t, spool, srv, id) {
				mu.Lock()
				refused[id+" "+rcpt] = reply
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return failed, refused
}

// deliverAndRecord is one delivery attempt of the queue manager's.
func (r *rig) deliverAndRecord(t *testing.T, spool *queue.Spool, srv *mdaServer, id string) map[string]*smtp.SMTPError {
	env := r.msgs[id].envelope()
	res, err := srv.deliver(r.msgs[id], env)
	if err != nil {
		t.Errorf("delivery of %s: %v", id, err)
		return nil
	}
	refused := map[string]*smtp.SMTPError{}
	for _, rc := range env.Recipients {
		rc.Attempts++
		if e := res[rc.Address]; e != nil {
			refused[rc.Address] = e
			continue
		}
		rc.State = queue.Delivered
	}
	if env.Done() {
		r.trace.Mark("removing " + id)
		spool.Remove(id)
	} else if spool.Update(env) == nil {
		r.trace.Mark(updated(env))
	}
	return refused
}

// updated is the mark of an acknowledged Update: the recipients' states.
func updated(env *queue.Envelope) string {
	var states []string
	for _, rc := range env.Recipients {
		states = append(states, string(rc.State))
	}
	return "updated " + env.ID + " " + strings.Join(states, ",")
}

// The production code survives a power cut at every point of a queue
// workload (concurrent Stores sharing flushes, Updates, Removes) and of a
// delivery workload (the MDA's Maildir copies and ledger as well).
func TestPowerLoss(t *testing.T) {
	t.Parallel()
	workloads := []struct {
		name    string
		withMDA bool // recover the MDA too, and deliver again
		run     func(*testing.T, *rig)
	}{
		{"queue", false, func(t *testing.T, r *rig) {
			if failed := queueWorkload(t, r, 6); len(failed) > 0 {
				t.Fatalf("stores failed: %v", failed)
			}
		}},
		{"recovery", false, func(t *testing.T, r *rig) { recoveryWorkload(t, r, 3) }},
		{"delivery", true, func(t *testing.T, r *rig) {
			if failed, refused := deliveryWorkload(t, r, 6); len(failed)+len(refused) > 0 {
				t.Fatalf("stores failed: %v; deliveries refused: %v", failed, refused)
			}
		}},
	}
	for _, fl := range flavours {
		for _, w := range workloads {
			name := w.name + "/" + fl.name
			t.Run(name, func(t *testing.T) {
				r := newRig(t, fl.syncfs, crashtest.Fault{})
				w.run(t, r)
				out := r.explore(limits(), seed(), w.withMDA)
				record(t, name, out, false)
				if out.violations > 0 {
					t.Errorf("%d violations; the first:\n%s", out.violations, out.first)
				}
			})
		}
	}
}

// Planted faults: the explorer must report each, or it proves nothing.
func TestPowerLossCatchesPlantedFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		delivery bool // the delivery workload, else the queue's
		syncfs   bool
		fault    crashtest.Fault
		rule     string // the rule the fault must break
	}{
		{"folder fsync dropped", false, false, crashtest.Fault{DropDirSync: true}, "rule 1"},
		{"queue log's fsync dropped", false, false, crashtest.Fault{DropFileSync: true}, "rule 1"},
		{"Store returns before its flush", false, true, crashtest.Fault{LateFsync: true}, "rule 1"},
		{"new folder's parent not synced", false, false, crashtest.Fault{DropMkdirSync: true}, "rule 1"},
		{"copy's folder fsync dropped", true, false, crashtest.Fault{DropDirSync: true}, "rule 2"},
		{"250 before the copy's flush", true, true, crashtest.Fault{LateSyncFS: true}, "rule 2"},
		{"mailbox's parent not synced", true, false, crashtest.Fault{DropMkdirSync: true}, "rule 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, tt.syncfs, tt.fault)
			if tt.delivery {
				deliveryWorkload(t, r, 3)
			} else {
				queueWorkload(t, r, 3)
			}
			out := r.explore(limits(), seed(), tt.delivery)
			record(t, tt.name, out, true)
			if out.rules[tt.rule] == 0 {
				t.Fatalf("planted fault %q: %s not reported in %d states (violations by rule: %v)", tt.name, tt.rule, out.stats.States, out.rules)
			}
			t.Logf("caught (violations by rule: %v); the first report:\n%s", out.rules, out.first)
		})
	}
}

// Fsyncgate: each flush of a queue workload fails in turn (EIO). The
// Store concerned fails with an error the MTA answers 451 4.3.0 to, its
// files are gone, and no Store counts on a write made before the failed
// flush: every crash state still keeps every acknowledged message.
//
// Only as the daemons wire the queue and the Maildirs (syncfs through
// durable.Batched): a bare FS forgets a failed flush, and the flushes
// after it do not cover what it dropped.
func TestPowerLossFlushErrors(t *testing.T) {
	t.Parallel()
	eachFlushFailing(t, "queue/syncfs", true, crashtest.Limits{Prefixes: 4, Cuts: 4}, false,
		func(r *rig) func(int) {
			failed := queueWorkload(t, r, 4)
			return func(k int) { r.checkFailedStores(t, k, failed) }
		})
}

// Fsyncgate at the MDA: each flush of the delivery phase fails in turn.
// The recipient concerned is deferred with 451 4.3.0, its copy is not in
// the Maildir, and every crash state keeps the rules.
func TestPowerLossFlushErrorsInDelivery(t *testing.T) {
	t.Parallel()
	eachFlushFailing(t, "delivery/syncfs", true, crashtest.Limits{Prefixes: 4, Cuts: 4}, true,
		func(r *rig) func(int) {
			_, refused := deliveryWorkload(t, r, 3)
			return func(k int) { r.checkDeferred(t, k, refused) }
		})
}

// eachFlushFailing runs workload once cleanly, then again with each of
// its flushes past the set-up failing in turn (a flush failing in the
// set-up only stops the daemon's start). The check workload returns
// looks at what the failure left; the crash states are explored from
// the last flush before the failed one on: earlier ones are those of a
// run without the fault, which TestPowerLoss explores.
func eachFlushFailing(t *testing.T, name string, syncfs bool, lim crashtest.Limits, withMDA bool, workload func(*rig) func(k int)) {
	clean := newRig(t, syncfs, crashtest.Fault{})
	workload(clean)
	flushes := clean.trace.Flushes()
	for k := clean.setupFlushes + 1; k <= flushes; k++ {
		r := newRig(t, syncfs, crashtest.Fault{FailFlush: k})
		check := workload(r)
		if lim.From = r.failedFlushAt(); lim.From < 0 {
			t.Logf("%s: flush %d not reached: this run made fewer flushes (group commit)", name, k)
			continue
		}
		check(k)
		out := r.explore(lim, seed(), withMDA)
		record(t, fmt.Sprintf("%s, flush %d of %d fails", name, k, flushes), out, false)
		if out.violations > 0 {
			t.Errorf("flush %d failing: %d violations; the first:\n%s", k, out.violations, out.first)
		}
	}
}

// checkDeferred checks the recipients the MDA refused once flush k
// failed: 451 4.3.0 each, and no copy of theirs in the Maildir.
func (r *rig) checkDeferred(t *testing.T, k int, refused map[string]*smtp.SMTPError) {
	var v []string
	copies := r.countCopies(&v)
	for key, reply := range refused {
		if reply.Code != 451 || reply.EnhancedCode != (smtp.EnhancedCode{4, 3, 0}) {
			t.Errorf("flush %d failing: %s refused with %d %v %q, want 451 4.3.0", k, key, reply.Code, reply.EnhancedCode, reply.Message)
		}
		if copies[key] > 0 {
			t.Errorf("flush %d failing: %s deferred, yet its copy is in the Maildir", k, key)
		}
	}
	if len(v) > 0 {
		t.Errorf("flush %d failing: %v", k, v)
	}
}

// failedFlushAt is the index in the trace of the last flush before the
// failed one (0 if none), or -1 when the run made fewer flushes than the
// clean one (group commit batches differently from run to run).
func (r *rig) failedFlushAt() int {
	last := 0
	for i, op := range r.trace.Ops() {
		switch {
		case op.Failed:
			return last
		case op.Kind == crashtest.Fsync || op.Kind == crashtest.FsyncDir || op.Kind == crashtest.SyncFS:
			last = i
		}
	}
	return -1
}

// checkFailedStores checks the Stores that failed once flush k failed.
func (r *rig) checkFailedStores(t *testing.T, k int, failed map[string]error) {
	for id, err := range failed {
		if !errors.Is(err, syscall.EIO) && !errors.Is(err, durable.ErrFlushFailed) {
			t.Errorf("flush %d failing: Store %s: %v, want EIO or ErrFlushFailed (451 4.3.0)", k, id, err)
		}
		for _, name := range []string{"msg/" + id, "env/" + id, "tmp/" + id + ".msg", "tmp/" + id + ".env"} {
			if _, err := os.Lstat(r.queue.Root + "/" + name); err == nil {
				t.Errorf("flush %d failing: Store %s failed but left %s", k, id, name)
			}
		}
	}
}

// Regression: the explorer's first find. The ledger's log file was
// created without an fsync of its folder, so a power cut could forget
// the file with every flushed "begin" record in it, and a copy renamed
// into new/ meanwhile was written again on redelivery (rule 3). The
// trace: create state/delivered.log; write; fsync of the file; rename
// of the copy into new/; crash: the copy is there, the log is not.
func TestPowerLossLedgerFileIsDurable(t *testing.T) {
	t.Parallel()
	r := newRig(t, false, crashtest.Fault{})
	ledger, err := mda.OpenLedger(r.state, r.state.Root, 24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.Begin("Q1", "alice@example.test", "alice", "key", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := ledger.Flush(); err != nil {
		t.Fatal(err)
	}
	r.trace.Mark("begun Q1")
	ledger.Close()
	var states, lost int
	stats, err := crashtest.Explore(r.trace.Ops(), r.vols(), limits(), rand.New(rand.NewPCG(seed(), seed())), func(st *crashtest.State) error {
		states++
		if err := st.Materialize(); err != nil {
			return err
		}
		l, err := mda.OpenLedger(crashtest.NewTrace(r.base).NewVolume("state", r.state.Root), r.state.Root, 24*time.Hour, time.Now())
		if err != nil {
			return err
		}
		defer l.Close()
		if _, ok := l.Find("Q1", "alice@example.test"); len(st.Acked) > 0 && !ok {
			lost++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	record(t, "ledger file", outcome{stats: stats, violations: lost}, false)
	if lost > 0 {
		t.Errorf("a flushed begin record is lost in %d of %d crash states", lost, states)
	}
}
