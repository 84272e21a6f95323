//go:build linux || freebsd

package niceadapter

import "syscall"

// procAttr: a process group of its own, and SIGKILL when the leader dies,
// so that no worker of a dead leader runs beside the next leader's
// attempt of the same job.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
