package jobstore_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/jobstore"
)

// LockShared sees a writer's lock, lets readers in, and keeps a writer
// out while it holds the lock.
func TestLockShared(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wf.db")
	_, err := jobstore.LockShared(path)
	require.ErrorIs(t, err, os.ErrNotExist)

	w, err := jobstore.OpenBolt(path, nil)
	require.NoError(t, err)
	_, err = jobstore.LockShared(path)
	require.ErrorIs(t, err, jobstore.ErrLocked, "a writer holds the store")
	require.NoError(t, w.Close())

	release, err := jobstore.LockShared(path)
	require.NoError(t, err)
	r, err := jobstore.OpenBolt(path, &jobstore.BoltOptions{ReadOnly: true, LockTimeout: -1})
	require.NoError(t, err, "readers share the lock")
	require.NoError(t, r.Close())
	_, err = jobstore.OpenBolt(path, &jobstore.BoltOptions{LockTimeout: -1})
	require.ErrorIs(t, err, jobstore.ErrLocked, "no writer while the probe holds the lock")
	release()

	w, err = jobstore.OpenBolt(path, &jobstore.BoltOptions{LockTimeout: -1})
	require.NoError(t, err, "released")
	require.NoError(t, w.Close())
}
