//go:build unix && !linux && !darwin && !freebsd

package local

// Unix systems gaffer does not list as supported (see the README): no
// orphan is looked for, and memory and disk are guesses; set
// Options.Memory and Options.Disk.

func procStart(pid int) (uint64, bool) { return 0, false }

func machineMemory() int64 { return 8 << 30 }

func freeDisk(dir string) int64 { return 100 << 30 }
