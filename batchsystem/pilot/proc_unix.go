//go:build unix

package pilot

import (
	"os"
	"syscall"
)

// procAttr starts a job in a process group of its own, so that a kill
// takes what the job started too.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

func signalTree(p *os.Process, sig syscall.Signal) {
	_ = syscall.Kill(-p.Pid, sig)
	_ = p.Signal(sig)
}

func exitSignal(st *os.ProcessState) int {
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return int(ws.Signal())
	}
	return 0
}

// canReuse: folder workers move their channel off descriptors 1 and 2
// (gaffer's worker_folders_unix.go), which only Unix allows.
const canReuse = true
