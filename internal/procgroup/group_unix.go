//go:build unix

package procgroup

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Kill kills p and everything in its process group.
func Kill(p *os.Process) {
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
}

// Exit ends this process and, if it leads a process group of its own
// (as Attr makes it), everything in the group: what a job started does
// not outlive the worker. It does not return.
func Exit(code int) {
	if pgid, err := unix.Getpgid(0); err == nil && pgid == os.Getpid() {
		_ = syscall.Kill(0, syscall.SIGKILL)
	}
	os.Exit(code)
}
