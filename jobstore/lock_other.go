//go:build plan9 || solaris || aix || android

package jobstore

import "os"

// bbolt locks with fcntl here: a lock of the process, which a probe's
// release would drop for the whole process. There is no probe.
func lockShared(*os.File) (bool, error) { return false, ErrLockUnsupported }

func unlock(*os.File) {}
