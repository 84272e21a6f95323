//go:build windows

package local

import (
	"os"
	"syscall"
)

// procAttr: Windows has no process groups to kill and no parent-death
// signal; see killTree and reapOrphan for what is done instead.
func procAttr() *syscall.SysProcAttr { return nil }

// WorkersDieWithLeader reports whether subprocess workers die with the
// leader on this operating system (a parent-death signal); where they do
// not, the next leader kills orphans by pid (PIDFile).
const WorkersDieWithLeader = false

// killTree kills the worker process. Processes it started are not
// killed: Windows has no process group that Kill could name.
func killTree(p *os.Process) { _ = p.Kill() }

// killOrphan kills a worker that an earlier leader started; pid was
// checked to be that worker (procStart).
func killOrphan(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Kill()
		_ = p.Release()
	}
}
