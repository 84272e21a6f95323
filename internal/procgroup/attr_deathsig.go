//go:build linux || freebsd

package procgroup

import "syscall"

// Attr puts a worker in a process group of its own and asks the kernel
// to kill it (SIGKILL) when its parent dies.
func Attr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
