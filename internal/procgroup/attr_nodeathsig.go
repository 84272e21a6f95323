//go:build unix && !linux && !freebsd

package procgroup

import "syscall"

// Attr puts a worker in a process group of its own. There is no
// parent-death signal here: the worker watches its input pipe (Exit).
func Attr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
