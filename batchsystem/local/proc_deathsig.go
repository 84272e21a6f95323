//go:build linux || freebsd

package local

import "syscall"

// procAttr puts a worker in a process group of its own, so that killing
// the group kills what the worker started too, and asks the kernel to
// kill the worker when the leader dies, so that no worker of a dead
// leader runs beside the next leader's attempt of the same job.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// WorkersDieWithLeader reports whether subprocess workers die with the
// leader on this operating system (a parent-death signal); where they do
// not, the next leader kills orphans by pid (PIDFile).
const WorkersDieWithLeader = true
