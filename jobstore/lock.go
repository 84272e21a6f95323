package jobstore

import (
	"errors"
	"fmt"
	"os"
)

// ErrLockUnsupported is returned by LockShared where it cannot take the
// lock the way bbolt does without disturbing another holder in the same
// process (systems where bbolt locks with fcntl, whose locks belong to
// the process rather than to the open file).
var ErrLockUnsupported = errors.New("jobstore: this system has no separate lock probe")

// LockShared takes the lock a read-only OpenBolt takes on the store file
// at path, without opening the store, and returns the function that
// releases it. It fails at once with ErrLocked while another open file
// holds the store for writing (a leader), and lets other readers in.
//
// It lets a tool ask whether a leader holds a store before it reads the
// file: OpenBolt checks the file's pages before bbolt takes its lock, and
// pages a leader is rewriting meanwhile could look damaged. Holding the
// lock while the store is opened read-only also keeps a leader from
// starting in between.
func LockShared(path string) (release func(), err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("jobstore: open %s: %w", path, err)
	}
	ok, err := lockShared(f)
	if err != nil {
		f.Close()
		if errors.Is(err, ErrLockUnsupported) {
			return nil, err
		}
		return nil, fmt.Errorf("jobstore: lock %s: %w", path, err)
	}
	if !ok {
		f.Close()
		return nil, fmt.Errorf("%w: %s", ErrLocked, path)
	}
	return func() {
		unlock(f)
		f.Close()
	}, nil
}
