//go:build unix

package gaffertest

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// canSeeProcesses: on Unix the suite checks workers' processes by pid.
const canSeeProcesses = true

// alive reports whether pid names a process that has not exited; a
// zombie (seen through /proc on Linux) has.
func alive(pid int) bool {
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
