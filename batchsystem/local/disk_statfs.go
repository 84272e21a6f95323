//go:build linux || darwin || freebsd

package local

import (
	"cmp"
	"syscall"
)

// freeDisk is the space free to unprivileged users on dir's file system.
func freeDisk(dir string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 100 << 30
	}
	return cmp.Or(int64(st.Bavail)*int64(st.Bsize), 1<<30)
}
