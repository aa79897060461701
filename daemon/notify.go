package daemon

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
)

// notifySocketEnv names the socket of the service manager that started
// postline with Type=notify (systemd, sd_notify(3)).
const notifySocketEnv = "NOTIFY_SOCKET"

// Notify sends state ("READY=1", "RELOADING=1", "STOPPING=1") to the
// service manager, when there is one; otherwise it does nothing. The
// protocol is one datagram on a unix socket, which needs no library.
func Notify(state string) error {
	path := os.Getenv(notifySocketEnv)
	if path == "" {
		return nil
	}
	if path[0] == '@' { // an abstract socket
		path = "\x00" + path[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("daemon: notify the service manager: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("daemon: notify the service manager: %w", err)
	}
	return nil
}

// ChildEnv is env without the service manager's socket: only the
// supervisor speaks for postline (systemd's NotifyAccess=main).
func ChildEnv(env []string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		return strings.HasPrefix(kv, notifySocketEnv+"=")
	})
}
