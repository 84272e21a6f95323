package local

import "golang.org/x/sys/unix"

// procStart is not needed on FreeBSD: workers die with their leader
// (parent-death signal), so no orphan is looked for.
func procStart(pid int) (uint64, bool) { return 0, false }

func machineMemory() int64 {
	if n, err := unix.SysctlUint64("hw.physmem"); err == nil && n > 0 {
		return int64(n)
	}
	return 8 << 30 // a guess; set Options.Memory instead
}
