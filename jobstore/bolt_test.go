package jobstore_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/gafferhq/gaffer/jobstore"
	"github.com/gafferhq/gaffer/jobstore/jobstoretest"
)

func TestBoltConformance(t *testing.T) {
	jobstoretest.Run(t, func(t *testing.T, dir string) (jobstore.Store, error) {
		return jobstore.OpenBolt(filepath.Join(dir, "wf.db"), nil)
	})
}

func TestBoltRefusesForeignFiles(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	require.NoError(t, os.WriteFile(text, bytes.Repeat([]byte("not a database\n"), 2000), 0o600))
	_, err := jobstore.OpenBolt(text, nil)
	require.ErrorIs(t, err, jobstore.ErrForeign)
	require.Contains(t, err.Error(), text, "the error names the file")

	other := filepath.Join(dir, "other.db")
	db, err := bolt.Open(other, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("users")); return err }))
	require.NoError(t, db.Close())
	_, err = jobstore.OpenBolt(other, nil)
	require.ErrorIs(t, err, jobstore.ErrForeign)

	// Nothing was lost: the other program's file is untouched.
	db, err = bolt.Open(other, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		require.NotNil(t, tx.Bucket([]byte("users")))
		require.Nil(t, tx.Bucket([]byte("meta")))
		return nil
	}))
	require.NoError(t, db.Close())
}

func TestBoltRefusesCorruptFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wf.db")
	s, err := jobstore.OpenBolt(path, nil)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	// Scribble over both meta pages (the first two pages of the file).
	for i := 16; i < 8192 && i < len(b); i++ {
		b[i] ^= 0x5a
	}
	require.NoError(t, os.WriteFile(path, b, 0o600))
	_, err = jobstore.OpenBolt(path, nil)
	require.Error(t, err)
	require.True(t, isCorruptOrForeign(err), "got %v", err)
}

func isCorruptOrForeign(err error) bool {
	return errorsIs(err, jobstore.ErrCorrupt) || errorsIs(err, jobstore.ErrForeign)
}

func TestBoltRefusesSecondLeader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wf.db")
	s, err := jobstore.OpenBolt(path, nil)
	require.NoError(t, err)
	defer s.Close()
	_, err = jobstore.OpenBolt(path, &jobstore.BoltOptions{LockTimeout: -1})
	require.ErrorIs(t, err, jobstore.ErrLocked)
}

func TestBoltRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wf.db")
	s, err := jobstore.OpenBolt(path, nil)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("schema"), []byte{0, 0, 0, 0, 0, 0, 0, 99})
	}))
	require.NoError(t, db.Close())
	_, err = jobstore.OpenBolt(path, nil)
	require.ErrorIs(t, err, jobstore.ErrSchemaVersion)
}
