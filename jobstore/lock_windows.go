//go:build windows

package jobstore

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// bbolt locks the byte range -1..0 of the file (LockFileEx), shared for a
// read-only store: the probe takes the same range.
const lockRange = (1 << 32) - 1

func lockShared(f *os.File) (bool, error) {
	err := windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0,
		&windows.Overlapped{Offset: lockRange, OffsetHigh: lockRange})
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
		return false, nil
	}
	return err == nil, err
}

func unlock(f *os.File) {
	_ = windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, &windows.Overlapped{Offset: lockRange, OffsetHigh: lockRange})
}
