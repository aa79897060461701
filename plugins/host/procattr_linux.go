package host

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill the plugin if the daemon dies without
// stopping it (SIGKILL, a crash): the supervisor restarts the daemon, and
// its new plugins must not find the old ones still running. The kernel ties
// the signal to the thread that started the child; Go ends a thread only
// when a goroutine locked to it exits, which postline's daemons never do.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
