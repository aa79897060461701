package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"

	"postline/durable"
)

// ListenTCP listens for SMTP clients on addr. TCP keepalive is off: a
// session's idle timeout (smtp_timeout) ends a dead peer's session
// anyway, and Go would set four socket options on every accepted
// connection for it (issue 11: 4 of the MTA's 70 system calls per message).
func ListenTCP(addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	return lc.Listen(context.Background(), "tcp", addr)
}

// ListenUnix listens on a unix socket at path with the given mode,
// replacing a stale socket file left by a crash. A live socket (another
// daemon answering on it) is an error rather than being stolen.
func ListenUnix(path string, mode os.FileMode) (net.Listener, error) {
	if err := durable.MkdirAll(durable.OS{}, filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s: another process is already listening on it", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket: %w", err)
	}
	// bind(2) makes the socket file with the umask's mode; a strict umask
	// keeps it closed to everyone until the Chmod (and, as root, the
	// Chown in Owners.ListenSocket) below. Nothing else creates files
	// while a daemon starts.
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, mode); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// Serve runs srv on each listener until ctx is done, then shuts srv down,
// giving transactions in flight up to grace to finish.
func Serve(ctx context.Context, log zerolog.Logger, srv *smtp.Server, listeners []net.Listener, grace time.Duration) {
	for _, l := range listeners {
		go func(l net.Listener) {
			if err := srv.Serve(l); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
				log.Error().Err(err).Str("listen", l.Addr().String()).Msg("listener stopped")
			}
		}(l)
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
}
