package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"postline/plugins"
	"postline/plugins/pb"
	"postline/plugins/sdk"
)

// Supervision timings; variables so tests can shorten them.
var (
	restartMin   = 100 * time.Millisecond // first wait before a restart
	restartMax   = 10 * time.Second       // the doubling wait stops here; there is no giving up
	stableUptime = 10 * time.Second       // a process that lived this long restarts after restartMin again
	startTimeout = 10 * time.Second       // go-plugin's limit for the handshake line
	watchEvery   = 500 * time.Millisecond // how often an idle plugin is checked for having exited
)

var errClosed = errors.New("plugin chain closed")

// proc supervises one configured plugin. go-plugin never restarts a
// process and, after a crash, hands back the dead client (go-plugin issues
// 305, 306), so proc replaces the whole instance: a new exec.Cmd and a new
// plugin.Client, after a delay that doubles while the plugin dies young.
type proc struct {
	spec        Spec
	opts        Options
	log         zerolog.Logger
	hooks       map[Hook]bool // fixed at the first start
	headersOnly bool          // fixed at the first start
	rewrites    bool          // data_replaces_body, fixed at the first start
	deliverBody bool          // deliver_body, fixed at the first start

	mu       sync.Mutex
	cur      *instance     // the serving process; nil while down
	ready    chan struct{} // open while down; closed when cur is back or proc closes
	next     time.Time     // when the next start attempt is due, while down
	delay    time.Duration // the wait before the next restart
	restarts int
	closed   bool
	stop     chan struct{}  // closed by close: ends the watcher and restart loops
	bg       sync.WaitGroup // the watcher and restart loops, awaited by close
}

// instance is one running plugin process, or a filter in the daemon's
// own process (client and cmd nil), which never exits or hangs apart
// from it.
type instance struct {
	client  *goplugin.Client
	cmd     *exec.Cmd
	rpc     pb.FilterClient
	pid     int
	started time.Time
	resp    *pb.ConfigureResponse
}

func newProc(ctx context.Context, spec Spec, opts Options) (*proc, error) {
	p := &proc{spec: spec, opts: opts, log: opts.Log.With().Str("plugin", spec.Name).Logger(),
		delay: restartMin, stop: make(chan struct{}), ready: make(chan struct{})}
	close(p.ready) // up from the start
	inst, err := p.launch(ctx)
	if err != nil {
		return nil, err
	}
	if p.hooks, err = p.pickHooks(inst.resp.GetHooks()); err != nil {
		inst.kill()
		return nil, err
	}
	p.headersOnly, p.rewrites, p.cur = inst.resp.GetDataHeadersOnly(), inst.resp.GetDataReplacesBody(), inst
	p.deliverBody = inst.resp.GetDeliverBody()
	p.log.Info().Int("pid", inst.pid).Bool("in_process", inst.client == nil).Strs("hooks", p.hookNames()).Bool("headers_only", p.headersOnly).
		Msg("plugin started")
	p.bg.Go(p.watch)
	return p, nil
}

// pickHooks decides which hooks to call: those the config lists, each of
// which the plugin must implement, or else every implemented hook the
// daemon runs.
func (p *proc) pickHooks(implemented []pb.Hook) (map[Hook]bool, error) {
	impl := map[Hook]bool{}
	for _, h := range implemented {
		if n, ok := hookProto[h]; ok {
			impl[n] = true
		}
	}
	hooks := map[Hook]bool{}
	for _, h := range p.spec.Hooks {
		if !impl[Hook(h)] {
			return nil, &FieldError{p.spec.Name, "hooks", fmt.Sprintf("the plugin does not implement %q", h)}
		}
		hooks[Hook(h)] = true
	}
	if len(p.spec.Hooks) == 0 {
		for _, h := range hooksOf(p.spec.Daemon) {
			if impl[h] {
				hooks[h] = true
			}
		}
	}
	if impl[HookDisconnect] && len(hooks) > 0 && slices.Contains(hooksOf(p.spec.Daemon), HookConnect) {
		hooks[HookDisconnect] = true // not a filter: always wanted when offered
	}
	if len(hooks) == 0 {
		return nil, &FieldError{p.spec.Name, "daemon", fmt.Sprintf("the plugin implements none of the hooks the %s runs (%s)",
			p.spec.Daemon, joinHooks(hooksOf(p.spec.Daemon)))}
	}
	return hooks, nil
}

func (p *proc) hookNames() []string {
	var names []string
	for _, h := range hooksOf(p.spec.Daemon) {
		if p.hooks[h] {
			names = append(names, string(h))
		}
	}
	return names
}

// launch starts a new process, or the filter in this process, and
// configures it.
func (p *proc) launch(ctx context.Context) (*instance, error) {
	inst, err := p.start()
	if err != nil {
		return nil, err
	}
	cfg := []byte("{}")
	if p.spec.Config != nil {
		cfg, _ = json.Marshal(p.spec.Config) // Validate checked that it encodes
	}
	stateDir, err := p.stateDir()
	if err != nil {
		inst.kill()
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, p.spec.Timeout)
	defer cancel()
	inst.resp, err = inst.rpc.Configure(cctx, &pb.ConfigureRequest{
		Name: p.spec.Name, Daemon: p.spec.Daemon, Hostname: p.opts.Hostname, ConfigJson: cfg, StateDir: stateDir})
	if err != nil {
		inst.kill()
		return nil, fmt.Errorf("configure: %s", status.Convert(err).Message())
	}
	inst.started = time.Now()
	return inst, nil
}

// stateDir makes the plugin's folder for state, Options.StateDir/NAME
// (the daemon's user's, 0700), and returns it; "" without Options.StateDir.
func (p *proc) stateDir() (string, error) {
	if p.opts.StateDir == "" {
		return "", nil
	}
	dir := filepath.Join(p.opts.StateDir, p.spec.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("state folder: %w", err)
	}
	return dir, nil
}

// start starts the plugin's process, or, for a filter run in the daemon
// (Spec.InProcess), only its direct client.
func (p *proc) start() (*instance, error) {
	if p.spec.InProcess != nil {
		return &instance{rpc: sdk.Direct(p.spec.InProcess)}, nil
	}
	cmd := exec.Command(p.spec.Path)
	// go-plugin appends the daemon's environment and its handshake cookie.
	cmd.Env = []string{plugins.LogLevelEnv + "=" + pluginLogLevel(p.log)}
	dieWithParent(cmd)
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  plugins.Handshake,
		Plugins:          goplugin.PluginSet{plugins.Name: clientPlugin{}},
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		AutoMTLS:         p.opts.AutoMTLS,
		Managed:          true,
		Logger:           newHCLogger(p.log),
		StartTimeout:     startTimeout,
	})
	inst := &instance{client: client, cmd: cmd}
	rpc, err := client.Client()
	if err != nil {
		inst.kill()
		return nil, fmt.Errorf("start %s: %w", p.spec.Path, err)
	}
	inst.pid = cmd.Process.Pid
	raw, err := rpc.Dispense(plugins.Name)
	if err != nil {
		inst.kill()
		return nil, fmt.Errorf("dispense %s: %w", p.spec.Path, err)
	}
	inst.rpc = raw.(pb.FilterClient)
	return inst, nil
}

// acquire returns the serving process. While the plugin is down it waits
// for the restart, but only when the restart is due before the call's
// deadline: a crash-looping plugin costs a session nothing but the reply.
func (p *proc) acquire(ctx context.Context) (*instance, error) {
	for {
		p.mu.Lock()
		inst, ready, next, closed := p.cur, p.ready, p.next, p.closed
		p.mu.Unlock()
		switch {
		case closed:
			return nil, errClosed
		case inst != nil && inst.exited():
			p.fail(inst, "exited", nil)
			continue
		case inst != nil:
			return inst, nil
		}
		if dl, ok := ctx.Deadline(); ok && next.After(dl) {
			return nil, fmt.Errorf("restarting; next attempt in %s", time.Until(next).Round(time.Millisecond))
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("restarting: %w", ctx.Err())
		}
	}
}

// fail takes a dead or hung process out of service and restarts the
// plugin in the background. Only the first report about inst counts.
func (p *proc) fail(inst *instance, reason string, err error) {
	p.mu.Lock()
	if p.closed || p.cur != inst {
		p.mu.Unlock()
		return
	}
	if time.Since(inst.started) >= stableUptime {
		p.delay = restartMin
	}
	delay := p.delay
	p.delay = min(2*delay, restartMax)
	p.cur, p.ready, p.next = nil, make(chan struct{}), time.Now().Add(delay)
	p.bg.Add(1) // under the lock, so close cannot be waiting yet
	p.mu.Unlock()
	p.log.Error().Err(err).Str("reason", reason).Int("pid", inst.pid).Dur("restart_in", delay).
		Bool("crash_loop", delay > restartMin).Msg("plugin failed, restarting it")
	go func() {
		defer p.bg.Done()
		p.restart(inst, delay)
	}()
}

// restart kills old and starts new processes until one comes up or the
// chain closes.
func (p *proc) restart(old *instance, delay time.Duration) {
	old.kill()
	for {
		select {
		case <-p.stop:
			return
		case <-time.After(delay):
		}
		inst, err := p.launch(context.Background())
		if err == nil {
			p.install(inst)
			return
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return // close has already woken the waiting calls
		}
		delay = p.delay
		p.delay = min(2*delay, restartMax)
		p.next = time.Now().Add(delay)
		close(p.ready) // waiting calls look again: most now give up at once
		p.ready = make(chan struct{})
		p.mu.Unlock()
		p.log.Error().Err(err).Dur("restart_in", delay).Bool("crash_loop", true).Msg("plugin restart failed")
	}
}

// install puts a restarted process into service and wakes waiting calls.
func (p *proc) install(inst *instance) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		inst.kill()
		return
	}
	p.cur = inst
	p.restarts++
	close(p.ready)
	p.mu.Unlock()
	if inst.resp.GetDataHeadersOnly() != p.headersOnly || inst.resp.GetDataReplacesBody() != p.rewrites ||
		inst.resp.GetDeliverBody() != p.deliverBody {
		p.log.Warn().Msg("restarted plugin changed its headers-only, replaces-body or deliver-body answer; keeping the first one until the daemon restarts")
	}
	p.log.Info().Int("pid", inst.pid).Int("restarts", p.restarts).Msg("plugin restarted")
}

// watch notices a process that died between calls, so that it is back
// before the next message needs it.
func (p *proc) watch() {
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		p.mu.Lock()
		inst := p.cur
		p.mu.Unlock()
		if inst != nil && inst.exited() {
			p.fail(inst, "exited", nil)
		}
	}
}

// close stops the plugin for good; no process of it outlives the call.
func (p *proc) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.stop)
	inst := p.cur
	if inst == nil {
		close(p.ready) // wake calls waiting for a restart
	}
	p.cur = nil
	p.mu.Unlock()
	if inst != nil {
		inst.stop()
	}
	p.bg.Wait() // a restart under way ends by killing what it started
}

// kill ends a dead or hung process at once: there is nothing left to say
// to it, and go-plugin's graceful Kill would wait 2 s for a hung one.
// client.Kill then reaps it and ends go-plugin's goroutines.
func (in *instance) kill() {
	if in.client == nil {
		return
	}
	if in.cmd.Process != nil {
		_ = in.cmd.Process.Kill()
	}
	in.client.Kill()
}

// stop asks a healthy process to exit (go-plugin closes the connection,
// waits up to 2 s, then kills it) and kills it outright if even that
// hangs, as it would for a stopped process.
func (in *instance) stop() {
	if in.client == nil {
		return
	}
	done := make(chan struct{})
	go func() {
		in.client.Kill()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		if in.cmd.Process != nil {
			_ = in.cmd.Process.Kill()
		}
		<-done
	}
}

// exited reports whether the plugin's process has exited.
func (in *instance) exited() bool { return in.client != nil && in.client.Exited() }

// clientPlugin is the host half of go-plugin's GRPCPlugin: it only makes
// the generated client. The SDK has the serving half.
type clientPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
}

func (clientPlugin) GRPCServer(*goplugin.GRPCBroker, *grpc.Server) error {
	return errors.New("host: the host serves no filter")
}

func (clientPlugin) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return pb.NewFilterClient(cc), nil
}

// pluginLogLevel tells the plugin the lowest level the daemon keeps, as
// hclog names it; a daemon that keeps no errors still lets it write those.
func pluginLogLevel(l zerolog.Logger) string {
	return min(newHCLogger(l).GetLevel(), hclog.Error).String()
}
