//go:build linux

package cluster

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts a node in its own process group, so that a Ctrl-C in the
// terminal reaches roachtest (which stops the nodes in order and keeps their
// logs) rather than every node at once, and asks the kernel to SIGKILL the
// node if roachtest dies without cleaning up (a `go test` timeout panic, a
// SIGKILL). Pdeathsig fires when the thread that forked the child exits;
// Go only ends threads that a goroutine locked and did not unlock, which this
// package never does, so in practice it fires when the process dies.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
