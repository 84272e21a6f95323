package local

import "golang.org/x/sys/unix"

// limitMemory caps the data segment of process pid at bytes
// (RLIMIT_DATA), which on Linux covers a Go program's heap: past it, its
// allocations fail and the Go runtime exits with "out of memory". It is
// set once the process has started, before the job's body has had time
// to allocate much; the runtime's own start takes a few MiB.
func limitMemory(pid int, bytes int64) error {
	lim := unix.Rlimit{Cur: uint64(bytes), Max: uint64(bytes)}
	return unix.Prlimit(pid, unix.RLIMIT_DATA, &lim, nil)
}

const memoryEnforced = true
