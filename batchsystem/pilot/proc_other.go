//go:build !unix

package pilot

import (
	"os"
	"syscall"
)

// procAttr: without process groups, a kill stops the job's own process
// only.
func procAttr() *syscall.SysProcAttr { return nil }

func signalTree(p *os.Process, sig syscall.Signal) {
	if sig == syscall.SIGKILL {
		_ = p.Kill()
		return
	}
	_ = p.Signal(sig)
}

func exitSignal(*os.ProcessState) int { return 0 }

// canReuse: folder workers need Unix descriptors; elsewhere every job is
// a process of its own.
const canReuse = false
