//go:build !linux

package cluster

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts a node in its own process group (see proc_linux.go). There
// is no parent-death signal outside Linux: KillAll is the only backstop.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}
