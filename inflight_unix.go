//go:build unix

package gaffer

import (
	"os"
	"syscall"
)

// mapShared maps the first n bytes of f, shared: stores reach the file
// through the page cache even if the process dies. nil if it cannot.
func mapShared(f *os.File, n int) []byte {
	b, err := syscall.Mmap(int(f.Fd()), 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil
	}
	return b
}

func unmap(b []byte) {
	if b != nil {
		_ = syscall.Munmap(b)
	}
}
