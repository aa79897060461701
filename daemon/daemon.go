// Package daemon is what every postline daemon does at start and stop:
// read the config named by -c, set up the logger, prepare its folders
// with their owners, drop root once its sockets are bound, tell the
// supervisor it is ready, and wait for a stop signal.
//
// daemon holds no mail logic; msa, mta and mda know nothing of it.
package daemon

import (
	"context"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/term"

	"postline/config"
	"postline/users"
)

// ReadyFDEnv names the environment variable through which the supervisor
// passes the descriptor a child writes "ready" to once it serves.
const ReadyFDEnv = "POSTLINE_READY_FD"

// DefaultConfig is the config file used when -c is not given.
const DefaultConfig = "/etc/postline/postline.toml"

// Start parses the command line (-c FILE), loads the config and builds the
// logger for service svc. It exits the process on a bad config.
func Start(svc string) (*config.Config, zerolog.Logger) {
	path := flag.String("c", DefaultConfig, "config file")
	flag.Parse()
	IgnoreHangup() // until the daemon's Reloader runs
	log := NewLogger(svc, zerolog.InfoLevel)
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	level, _ := cfg.ZerologLevel()
	return cfg, log.Level(level)
}

// NewLogger returns a logger tagged with svc: JSON lines on stderr, or a
// human-readable form when stderr is a terminal, and to also, if given
// (a zerolog.LevelWriter sees each event's level). Under the supervisor,
// warnings and errors also go to it (supervisorFD), for `postline
// status`.
func NewLogger(svc string, level zerolog.Level, also ...io.Writer) zerolog.Logger {
	zerolog.TimeFieldFormat = time.RFC3339Nano
	var w io.Writer = os.Stderr
	if term.IsTerminal(int(os.Stderr.Fd())) {
		w = zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly}
	}
	if fd, ok := supervisorFD(); ok {
		also = append(also, problemWriter{fd})
	}
	if len(also) > 0 {
		w = zerolog.MultiLevelWriter(append([]io.Writer{w}, also...)...)
	}
	return zerolog.New(w).With().Timestamp().Str("svc", svc).Logger().Level(level)
}

// supervisorFD is the pipe to the supervisor (ReadyFDEnv), made
// close-on-exec so plugins do not inherit it, and non-blocking so a
// supervisor that stopped reading never stalls a daemon's logging.
func supervisorFD() (int, bool) {
	fd, err := strconv.Atoi(os.Getenv(ReadyFDEnv))
	if err != nil || fd < 3 {
		return -1, false
	}
	syscall.CloseOnExec(fd)
	if err := syscall.SetNonblock(fd, true); err != nil {
		return -1, false
	}
	return fd, true
}

// problemWriter passes warnings and errors on to the supervisor; a line
// the pipe has no room for is dropped (it is on stderr anyway).
type problemWriter struct{ fd int }

func (p problemWriter) Write(b []byte) (int, error) { return len(b), nil }

func (p problemWriter) WriteLevel(level zerolog.Level, b []byte) (int, error) {
	if level >= zerolog.WarnLevel && level < zerolog.NoLevel {
		syscall.Write(p.fd, b)
	}
	return len(b), nil
}

// NotifyReady tells the supervisor, if there is one, that the daemon now
// serves: a line "ready" on the pipe, which stays open for problems.
// Standalone it does nothing.
func NotifyReady() error {
	fd, ok := supervisorFD()
	if !ok {
		return nil
	}
	for tries := 0; ; tries++ {
		_, err := syscall.Write(fd, []byte("ready\n"))
		if err != syscall.EAGAIN || tries == 100 {
			if err != nil {
				return fmt.Errorf("daemon: notify ready: %w", err)
			}
			return nil
		}
		time.Sleep(10 * time.Millisecond) // the supervisor reads the pipe all the time
	}
}

// SignalContext returns a context cancelled on SIGTERM or SIGINT.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
}

// Fatal logs err and exits; for start-up failures only.
func Fatal(log zerolog.Logger, msg string, err error) {
	log.Error().Err(err).Msg(msg)
	os.Exit(1)
}

// StdLogger adapts the logger for libraries that want a *log.Logger
// (go-smtp's ErrorLog), at warn level.
func StdLogger(log zerolog.Logger) *stdlog.Logger {
	return stdlog.New(log.With().Str("from", "go-smtp").Logger().Level(zerolog.WarnLevel), "", 0)
}

// OpenUsers opens the users file and the aliases file, both read again
// whenever they change; it exits on a mistake in either.
func OpenUsers(cfg *config.Config, log zerolog.Logger) (*users.DB, *users.Aliases) {
	db, err := users.Open(cfg.UsersFile)
	if err != nil {
		Fatal(log, "cannot read users", err)
	}
	aliases, err := users.OpenAliases(cfg.AliasesFile)
	if err != nil {
		Fatal(log, "cannot read aliases", err)
	}
	return db, aliases
}

// FlushFailure stops a daemon whose flushes failed, so that the
// supervisor starts it again: after a failed fsync the kernel may have
// dropped pages it could not write, and only the recovery at start,
// which reads what is on disk, is safe (durable.ErrFlushFailed).
type FlushFailure struct {
	Log  zerolog.Logger
	Stop context.CancelFunc // ends the daemon's serving, gracefully

	once    sync.Once
	failed  atomic.Bool
	exiting atomic.Bool // ExitIfFailed ran: a late report exits at once
}

// Report logs the first failure and stops the daemon.
func (f *FlushFailure) Report(err error) {
	f.once.Do(func() {
		f.failed.Store(true)
		f.Log.Error().Err(err).Msg("a flush failed: stopping, to start again and recover from what is on disk")
		f.Stop()
		if f.exiting.Load() { // a session that outlived the shutdown's grace
			os.Exit(1)
		}
	})
}

// ExitIfFailed ends the process with status 1 after a reported failure,
// so that the supervisor (or systemd's Restart=on-failure) starts it
// again; main defers it, to run after its plugins and listeners ended.
func (f *FlushFailure) ExitIfFailed() {
	f.exiting.Store(true)
	if f.failed.Load() {
		os.Exit(1)
	}
}
