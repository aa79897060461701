package crashtest_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"postline/config"
	"postline/durable"
	"postline/durable/crashtest"
	"postline/lmtp"
	"postline/mda"
	"postline/queue"
	"postline/users"
)

const (
	domain   = "example.test"
	hostname = "mx.example.test"
)

var mailboxes = []string{"alice", "bob", "carol"}

// rig is one workload's setting: three filesystems (the queue, the mail
// root, the MDA's state folder) recorded by one trace, wired as the
// daemons wire them, and the messages the workload sends.
type rig struct {
	t      testing.TB
	base   string
	trace  *crashtest.Trace
	syncfs bool // volumes that can flush whole, as the real ones

	queue, mail, state *crashtest.Volume
	scratch            string // the MDA's unlinked spool: not durable, not recorded
	mailboxes          *mda.Mailboxes

	msgs         map[string]*message
	byCopy       map[string]string // a Maildir copy's bytes -> queue ID
	order        []string
	setupFlushes int // flushes made before the first Store
}

// message is one message of a workload.
type message struct {
	id, from string
	rcpts    []string
	data     []byte // as queued, CRLF line ends
	copy     []byte // as a Maildir copy, LF line ends
}

func newRig(t testing.TB, syncfs bool, fault crashtest.Fault) *rig {
	// Not t.TempDir(): the MDA's unix socket path must stay short. A
	// tmpfs where there is one: no state needs a real disk, and the
	// explorer writes thousands of them.
	base, err := os.MkdirTemp("/dev/shm", "powerloss-")
	if err != nil {
		base, err = os.MkdirTemp("", "powerloss-")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	r := &rig{t: t, base: base, trace: crashtest.NewTrace(base), syncfs: syncfs, msgs: map[string]*message{}, byCopy: map[string]string{}}
	r.trace.Fault = fault
	for _, d := range []string{"queue", "mail", "state", "scratch"} {
		if err := os.Mkdir(filepath.Join(base, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	r.queue = r.trace.NewVolume("queue", filepath.Join(base, "queue"))
	r.mail = r.trace.NewVolume("mail", filepath.Join(base, "mail"))
	r.state = r.trace.NewVolume("state", filepath.Join(base, "state"))
	r.scratch = filepath.Join(base, "scratch")
	r.mailboxes = r.openMailboxes()
	return r
}

func (r *rig) vols() []*crashtest.Volume { return []*crashtest.Volume{r.queue, r.mail, r.state} }

func (r *rig) openMailboxes() *mda.Mailboxes {
	usersFile := filepath.Join(r.base, "users")
	for _, u := range mailboxes {
		if err := users.Set(usersFile, u+"@"+domain, "secret", bcrypt.MinCost); err != nil {
			r.t.Fatal(err)
		}
	}
	db, err := users.Open(usersFile)
	if err != nil {
		r.t.Fatal(err)
	}
	cfg := &config.Config{Hostname: hostname, Domains: []string{domain}, MDA: config.MDA{MailRoot: r.mail.Root}}
	return &mda.Mailboxes{Config: cfg, Users: db}
}

// spoolFS is the queue's filesystem as postline-mta wires it: group
// commit over a filesystem that flushes whole, or the plain one.
func (r *rig) spoolFS() durable.FS {
	if r.syncfs {
		return &durable.Batched{FS: crashtest.SyncVolume{Volume: r.queue}}
	}
	return r.queue
}

// maildirFS is the mail root as postline-mda wires it.
func (r *rig) maildirFS() mda.FS {
	if r.syncfs {
		return mda.NewBatchedFS(crashtest.SyncVolume{Volume: r.mail}, nil)
	}
	return r.mail
}

// addMessages makes n messages with 1 to 3 recipients; every third is
// larger than two blocks, so its unflushed content can be cut midway.
func (r *rig) addMessages(n int) {
	for i := range n {
		id := queue.NewID(time.Now())
		var rcpts []string
		for j := 0; j <= i%3; j++ {
			rcpts = append(rcpts, mailboxes[(i+j)%3]+"@"+domain)
		}
		body := strings.Repeat(fmt.Sprintf("line %d of message %d\r\n", i, i), 1+(i%3/2)*500)
		data := fmt.Sprintf("From: <sender@remote.test>\r\nTo: <%s>\r\nMessage-ID: <%d.%s@crashtest>\r\nSubject: %d\r\n\r\n%s",
			rcpts[0], i, id, i, body)
		m := &message{id: id, from: "sender@remote.test", rcpts: rcpts, data: []byte(data),
			copy: bytes.ReplaceAll([]byte(data), []byte("\r\n"), []byte("\n"))}
		r.msgs[id] = m
		r.byCopy[string(m.copy)] = id
		r.order = append(r.order, id)
	}
}

func (m *message) envelope() *queue.Envelope {
	env := &queue.Envelope{ID: m.id, From: m.from, Received: time.Unix(1_800_000_000, 0)}
	for _, a := range m.rcpts {
		env.Recipients = append(env.Recipients, &queue.Recipient{Address: a, State: queue.Pending})
	}
	return env
}

// storeAll stores every message from `writers` goroutines at once, so
// that Stores share flushes, and marks each one that returned nil. It
// returns the error of each Store that failed.
func (r *rig) storeAll(spool *queue.Spool, writers int) map[string]error {
	var mu sync.Mutex
	failed := map[string]error{}
	ids := make(chan string)
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for id := range ids {
				if err := spool.Store(r.msgs[id].envelope(), bytes.NewReader(r.msgs[id].data)); err != nil {
					mu.Lock()
					failed[id] = err
					mu.Unlock()
					continue
				}
				r.trace.Mark("stored " + id)
			}
		})
	}
	for _, id := range r.order {
		ids <- id
	}
	close(ids)
	wg.Wait()
	return failed
}

// mdaServer is postline-mda's LMTP server on a unix socket.
type mdaServer struct {
	socket string
	srv    interface{ Close() error }
	ledger *mda.Ledger
}

// startMDA serves LMTP as postline-mda does, over maildir and a ledger in
// the state folder written through ledgerFS. With mark, every 250 sent
// for a copy is marked just before it leaves.
func (r *rig) startMDA(maildir mda.FS, ledgerFS durable.FS, mark func(string)) (*mdaServer, error) {
	ledger, err := mda.OpenLedger(ledgerFS, r.state.Root, 24*time.Hour, time.Now())
	if err != nil {
		return nil, err
	}
	be := &mda.Backend{
		Mailboxes: r.mailboxes,
		Maildir:   &mda.Maildir{FS: maildir, Hostname: hostname},
		SpoolDir:  r.scratch,
		Ledger:    ledger,
		Log:       zerolog.Nop(),
	}
	srv := mda.NewServer(be, hostname)
	socket := filepath.Join(r.base, "mda.sock")
	os.Remove(socket)
	ln, err := net.Listen("unix", socket)
	if err != nil {
		ledger.Close()
		return nil, err
	}
	if mark != nil {
		ln = &markingListener{Listener: ln, mark: mark}
	}
	go srv.Serve(ln)
	return &mdaServer{socket: socket, srv: srv, ledger: ledger}, nil
}

func (s *mdaServer) stop() {
	s.srv.Close()
	s.ledger.Close()
}

// deliver hands message id's pending recipients in env to the MDA and
// returns each recipient's result.
func (s *mdaServer) deliver(m *message, env *queue.Envelope) (lmtp.Result, error) {
	var rcpts []string
	for _, rc := range env.Recipients {
		if rc.State == queue.Pending {
			rcpts = append(rcpts, rc.Address)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return lmtp.Deliver(ctx, s.socket, hostname, lmtp.Message{
		QueueID: m.id, From: m.from, Recipients: rcpts, Data: bytes.NewReader(m.data)})
}

// markingListener marks each copy's 250 before the MDA sends it: the
// moment the copy counts as delivered.
type markingListener struct {
	net.Listener
	mark func(string)
}

func (l *markingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &markingConn{Conn: c, mark: l.mark}, nil
}

// markingConn reads the queue ID from the client's MAIL FROM (ENVID)
// and marks "copy ID KEY" for each "delivered as KEY" the server sends.
type markingConn struct {
	net.Conn
	mark    func(string)
	queueID string
	inData  bool // between DATA and the final dot: message lines, not commands
}

func (c *markingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	for _, line := range strings.Split(string(p[:n]), "\r\n") {
		switch {
		case c.inData:
			c.inData = line != "."
		case line == "DATA":
			c.inData = true
		case strings.HasPrefix(line, "MAIL FROM:"):
			if _, id, ok := strings.Cut(line, "ENVID="); ok {
				c.queueID = strings.Fields(id)[0]
			}
		}
	}
	return n, err
}

func (c *markingConn) Write(p []byte) (int, error) {
	sc := bufio.NewScanner(bytes.NewReader(p))
	for sc.Scan() {
		if _, key, ok := strings.Cut(sc.Text(), "Ok: delivered as "); ok {
			c.mark("copy " + c.queueID + " " + strings.TrimSpace(key))
		}
	}
	return c.Conn.Write(p)
}

// spoolOptions make the queue's log begin a segment every few messages
// and give the larger messages files of their own, so the explorer
// crashes segment changes, deletions and moves, and both kinds of store.
var spoolOptions = queue.Options{SegmentSize: 2 << 10, InlineMax: 8 << 10}
