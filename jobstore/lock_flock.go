//go:build !windows && !plan9 && !solaris && !aix && !android

package jobstore

import (
	"errors"
	"os"
	"syscall"
)

// lockShared takes a shared flock on f, as bbolt does for a read-only
// store (and an exclusive one for a writable store). flock locks belong to
// the open file, so a probe in the leader's own process sees its lock and
// releasing the probe leaves the leader's lock alone.
func lockShared(f *os.File) (bool, error) {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}

func unlock(f *os.File) { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }
