package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"postline/certs"
	"postline/config"
	"postline/daemon"
)

// Start order: each daemon is ready before the one that hands it mail is
// started, so the first submission after start is queued and delivered.
var daemons = []string{"mda", "mta", "msa"}

const (
	readyTimeout  = 30 * time.Second
	stopTimeout   = 30 * time.Second
	firstRestart  = 500 * time.Millisecond
	maxRestart    = 10 * time.Second
	stableRunTime = 10 * time.Second // a child that ran this long was not crash-looping
)

// child is one supervised daemon process.
type child struct {
	name    string
	path    string
	cfgFile string
	log     zerolog.Logger

	cmd     *exec.Cmd
	started time.Time
	delay   time.Duration // wait before the next restart
	exited  chan struct{}
	hup     chan struct{} // reload requests, served by watch

	mu       sync.Mutex // guards what `postline status` reads
	pid      int
	since    time.Time // when the running process started
	restarts int
	problems problems // the child's last warnings and errors
}

func start(cfg *config.Config) int {
	level, _ := cfg.ZerologLevel()
	own := &problemLog{}
	log := daemon.NewLogger("postline", level, own)
	if err := prepare(cfg); err != nil {
		log.Error().Err(err).Msg("cannot prepare state_dir")
		return 1
	}
	exe, err := os.Executable()
	if err != nil {
		log.Error().Err(err).Msg("cannot find own binary")
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP) // before any child: a SIGHUP must not end postline
	defer signal.Stop(hup)

	var children []*child
	for _, name := range daemons {
		children = append(children, &child{name: name, path: filepath.Join(filepath.Dir(exe), "postline-"+name),
			cfgFile: cfg.File, log: log.With().Str("child", name).Logger(), delay: firstRestart})
	}
	status := &supervisorStatus{cfg: cfg, started: time.Now(), children: children, own: own}
	go status.serveStatus(ctx, log)
	for _, c := range children {
		if !c.startUntilReady(ctx) {
			break
		}
	}
	if ctx.Err() == nil {
		log.Info().Str("config", cfg.File).Msg("postline started")
		notify(log, "READY=1")
		reloaded := startCertificates(ctx, cfg, log, children)
		supervise(ctx, log, children, hup, reloaded)
	}
	notify(log, "STOPPING=1")
	stopAll(log, children)
	log.Info().Msg("postline stopped")
	return 0
}

// startCertificates runs the supervisor's own services, ACME and the
// MTA-STS policy, when configured, and returns what a reload tells them.
// A new certificate reloads the daemons, which read it.
func startCertificates(ctx context.Context, cfg *config.Config, log zerolog.Logger, children []*child) func(*config.Config) {
	var sts *mtaSTSServer
	issuer := startACME(ctx, cfg, log, func() {
		if cfg := reload(log, children); cfg != nil {
			sts.reload(cfg, log)
		}
	})
	var challenges *certs.Challenges
	if issuer != nil {
		challenges = issuer.Challenges
	}
	sts = startMTASTS(ctx, cfg, challenges, log)
	if issuer != nil {
		go issuer.Run(ctx)
	}
	return func(cfg *config.Config) {
		if issuer != nil {
			issuer.Reload(cfg)
		}
		sts.reload(cfg, log)
	}
}

// prepare creates state_dir, each daemon's folders with their owners
// (see daemon.Owners) and the self-signed certificate once, before the
// children that share them start: a folder a daemon could not reach
// after dropping privileges fails `postline start` here, by name, rather
// than a child in a crash loop. The supervisor itself stays root, to
// restart children that bind privileged ports.
func prepare(cfg *config.Config) error {
	if _, err := daemon.Prepare(cfg, daemons...); err != nil {
		return err
	}
	cert, key, generated := cfg.CertFiles()
	if !generated {
		return nil
	}
	if err := certs.EnsureSelfSigned(cert, key, cfg.Hostname); err != nil {
		return err
	}
	if cfg.ACME.On() { // the placeholder, until the first is issued
		return certs.Share(cert, key, msaGroup(cfg))
	}
	return nil
}

// startUntilReady starts the child, restarting it with backoff until it
// reports ready; false if ctx ended first.
func (c *child) startUntilReady(ctx context.Context) bool {
	for ctx.Err() == nil {
		ready, err := c.start()
		if err == nil {
			select {
			case <-ready:
				c.log.Info().Int("pid", c.cmd.Process.Pid).Msg("child ready")
				return true
			case <-c.exited:
				err = fmt.Errorf("exited before it was ready: %v", c.cmd.ProcessState)
			case <-time.After(readyTimeout):
				c.cmd.Process.Kill()
				<-c.exited
				err = fmt.Errorf("not ready after %s", readyTimeout)
			case <-ctx.Done():
				return false
			}
		}
		c.log.Error().Err(err).Dur("retry_in", c.delay).Msg("child failed to start")
		c.sleepBackoff(ctx)
	}
	return false
}

// start runs the child with a pipe on fd 3 that it writes "ready" to.
func (c *child) start() (ready <-chan struct{}, err error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer w.Close()
	cmd := exec.Command(c.path, "-c", c.cfgFile)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.ExtraFiles = []*os.File{w}
	cmd.Env = append(daemon.ChildEnv(os.Environ()), daemon.ReadyFDEnv+"=3")
	// Own process group: a Ctrl-C reaches only the supervisor, which
	// stops the children in order. Pdeathsig: no orphans if it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		r.Close()
		return nil, fmt.Errorf("start %s: %w", c.path, err)
	}
	c.cmd, c.started, c.exited = cmd, time.Now(), make(chan struct{})
	c.mu.Lock()
	c.pid, c.since = cmd.Process.Pid, c.started
	c.mu.Unlock()
	go func(exited chan struct{}) { cmd.Wait(); close(exited) }(c.exited)
	readyCh := make(chan struct{})
	go c.readPipe(r, readyCh)
	return readyCh, nil
}

// readPipe reads the child's pipe until it exits: "ready" once it
// serves, then its warnings and errors (daemon.NewLogger), kept for
// `postline status`.
func (c *child) readPipe(r *os.File, ready chan struct{}) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for sc.Scan() {
		if sc.Text() == "ready" && ready != nil {
			close(ready)
			ready = nil
			continue
		}
		c.mu.Lock()
		c.problems.add(sc.Text())
		c.mu.Unlock()
	}
}

// supervise restarts any child that exits, and passes each SIGHUP on to
// the children once the config file loads, until ctx is done.
func supervise(ctx context.Context, log zerolog.Logger, children []*child, hup <-chan os.Signal, reloaded func(*config.Config)) {
	var wg sync.WaitGroup
	for _, c := range children {
		c.hup = make(chan struct{}, 1)
		wg.Add(1)
		go func() { defer wg.Done(); c.watch(ctx) }()
	}
	for ctx.Err() == nil {
		select {
		case <-hup:
			if cfg := reload(log, children); cfg != nil {
				reloaded(cfg)
			}
		case <-ctx.Done():
		}
	}
	wg.Wait()
}

// reload checks the config file and has each child reload it: a file
// with a mistake reaches no daemon, so none logs the same error.
func reload(log zerolog.Logger, children []*child) *config.Config {
	cfg, err := config.Load(children[0].cfgFile)
	if err != nil {
		log.Error().Err(err).Msg("config not reloaded: fix it and send SIGHUP again")
		return nil
	}
	notify(log, "RELOADING=1")
	for _, c := range children {
		select {
		case c.hup <- struct{}{}:
			log.Info().Str("child", c.name).Msg("reloading")
		default: // one is pending already
		}
	}
	notify(log, "READY=1")
	return cfg
}

// notify tells systemd (Type=notify) how postline is; a failure is
// logged, not fatal: systemd then times the start out itself.
func notify(log zerolog.Logger, state string) {
	if err := daemon.Notify(state); err != nil {
		log.Warn().Err(err).Str("state", state).Msg("service manager not told")
	}
}

func (c *child) watch(ctx context.Context) {
	for {
		select {
		case <-c.exited:
			if ctx.Err() != nil {
				return
			}
			c.restart(ctx)
		case <-c.hup: // a child restarting reads the file anyway
			c.cmd.Process.Signal(syscall.SIGHUP)
		case <-ctx.Done():
			return
		}
	}
}

// restart brings an exited child back: within a second, or with a
// doubling delay (at most 10 s) while it keeps dying young. It never
// gives up.
func (c *child) restart(ctx context.Context) {
	ran := time.Since(c.started)
	if ran >= stableRunTime {
		c.delay = firstRestart
	}
	ev := c.log.Warn()
	if ran < stableRunTime && c.delay > firstRestart {
		ev = c.log.Error().Bool("crash_loop", true)
	}
	ev.Str("status", c.cmd.ProcessState.String()).Dur("ran", ran).Dur("restart_in", c.delay).Msg("child exited")
	for {
		c.sleepBackoff(ctx)
		if ctx.Err() != nil {
			return
		}
		if _, err := c.start(); err == nil {
			c.log.Info().Int("pid", c.cmd.Process.Pid).Msg("child restarted")
			c.mu.Lock()
			c.restarts++
			c.mu.Unlock()
			return
		} else {
			c.log.Error().Err(err).Msg("child failed to start")
		}
	}
}

func (c *child) sleepBackoff(ctx context.Context) {
	select {
	case <-time.After(c.delay):
	case <-ctx.Done():
	}
	c.delay = min(c.delay*2, maxRestart)
}

// stopAll stops the children in reverse start order: intake first, the
// MDA last, so messages in flight can reach the queue or the mailbox.
func stopAll(log zerolog.Logger, children []*child) {
	for i := len(children) - 1; i >= 0; i-- {
		c := children[i]
		if c.cmd == nil || c.cmd.Process == nil {
			continue
		}
		select {
		case <-c.exited:
			continue
		default:
		}
		c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(stopTimeout):
			log.Warn().Str("child", c.name).Msg("child did not stop in time; killing it")
			c.cmd.Process.Kill()
			<-c.exited
		}
	}
}
