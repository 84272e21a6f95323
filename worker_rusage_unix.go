//go:build unix

package gaffer

import (
	"runtime"
	"syscall"
	"time"
)

// selfUsage returns this process's CPU time (user and system) and peak
// resident memory in bytes.
func selfUsage() (cpu time.Duration, maxRSS int64) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, 0
	}
	cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	maxRSS = int64(ru.Maxrss)
	if runtime.GOOS != "darwin" && runtime.GOOS != "ios" {
		maxRSS *= 1024 // kilobytes everywhere else
	}
	return cpu, maxRSS
}
