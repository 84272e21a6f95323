//go:build unix && !linux && !freebsd

package local

import "syscall"

// procAttr puts a worker in a process group of its own. This system has
// no parent-death signal: a worker of a leader killed hard runs on, and
// the next leader kills it by pid (see reapOrphan) before it runs the
// job again.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// WorkersDieWithLeader reports whether subprocess workers die with the
// leader on this operating system (a parent-death signal); where they do
// not, the next leader kills orphans by pid (PIDFile).
const WorkersDieWithLeader = false
