//go:build unix

package local

import (
	"os"
	"syscall"
)

// killTree kills a worker and everything in its process group: the
// worker was started as the leader of a group of its own (procAttr).
func killTree(p *os.Process) {
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
}

// killOrphan kills the process group of a worker that an earlier leader
// started; pid was checked to be that worker (procStart).
func killOrphan(pid int) {
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
}
