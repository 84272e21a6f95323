//go:build unix

// Package procs looks processes up by pid, for the test suites that check
// that workers die when they should.
package procs

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Visible: on Unix processes can be looked up by pid.
const Visible = true

// Alive reports whether pid names a process that has not exited. A
// zombie (exited, not yet reaped; seen through /proc on Linux) has.
func Alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || !strings.HasPrefix(strings.TrimSpace(string(b[i+1:])), "Z")
}

// Kill kills pid with SIGKILL, ignoring errors.
func Kill(pid int) { _ = syscall.Kill(pid, syscall.SIGKILL) }
