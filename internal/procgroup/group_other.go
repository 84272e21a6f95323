//go:build !unix

package procgroup

import (
	"os"
	"syscall"
)

// Attr: no process groups here.
func Attr() *syscall.SysProcAttr { return nil }

// Kill kills the process p only: there is no group to name.
func Kill(p *os.Process) { _ = p.Kill() }

// Exit ends this process. It does not return.
func Exit(code int) { os.Exit(code) }
