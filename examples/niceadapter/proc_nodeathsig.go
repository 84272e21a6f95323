//go:build unix && !linux && !freebsd

package niceadapter

import "syscall"

// procAttr: a process group of its own. There is no parent-death signal
// here: workers of a leader killed hard run on (docs/adapters.md says
// what a real adapter does about it).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
