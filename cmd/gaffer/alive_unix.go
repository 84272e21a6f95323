//go:build unix

package main

import (
	"errors"
	"syscall"
)

// alive reports whether process pid runs (signal 0 asks without sending).
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
