package jobstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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

// FuzzDamagedStore opens a real store with bytes changed or cut and reads
// all of it: an error, or what was written; never a panic, never a hang.
func FuzzDamagedStore(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "base.db")
	s, err := jobstore.OpenBolt(path, &jobstore.BoltOptions{NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	err = s.Update(context.Background(), func(tx jobstore.Tx) error {
		for i := 1; i <= 300; i++ {
			j := &jobstore.Job{ID: jobstore.JobID(i), Kind: "k", State: jobstore.StatePending, Preds: []jobstore.JobID{1}}
			if err := tx.CreateJob(j, []byte(fmt.Sprintf(`{"i":%d}`, i))); err != nil {
				return err
			}
			if err := tx.PutResult(jobstore.JobID(i), []byte(fmt.Sprint(i*i))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
	s.Close()
	base, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	used := len(base)
	for used > 0 && base[used-1] == 0 {
		used--
	}
	for _, off := range []uint32{0, 100, 4096 + 40, 8192 + 20, 12288 + 10, uint32(used / 2), uint32(used - 5)} {
		f.Add(off, byte(0x5a), false)
		f.Add(off, byte(0), true)
	}
	f.Fuzz(func(t *testing.T, off uint32, x byte, cut bool) {
		b := append([]byte(nil), base[:used]...)
		at := int(off) % len(b)
		if cut {
			b = b[:at]
		} else if x != 0 {
			b[at] ^= x
		}
		p := filepath.Join(t.TempDir(), "d.db")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := jobstore.OpenBolt(p, &jobstore.BoltOptions{NoSync: true})
		if err != nil {
			return
		}
		defer s.Close()
		_ = s.View(context.Background(), func(tx jobstore.ReadTx) error {
			for j, err := range tx.Jobs() {
				if err != nil {
					return err
				}
				in, err := tx.Input(j.ID)
				if err != nil {
					return err
				}
				if want := fmt.Sprintf(`{"i":%d}`, j.ID); j.Kind != "k" || string(in) != want {
					t.Fatalf("job %d read back as %+v with input %s", j.ID, j, in)
				}
				if v, err := tx.Result(j.ID); err == nil && string(v) != fmt.Sprint(j.ID*j.ID) {
					t.Fatalf("result of %d read back as %s", j.ID, v)
				}
			}
			return nil
		})
	})
}

// The views lend what Input and Result copy, with the same errors.
func TestBoltViews(t *testing.T) {
	s, err := jobstore.OpenBolt(filepath.Join(t.TempDir(), "wf.db"), nil)
	require.NoError(t, err)
	defer s.Close()
	ctx := context.Background()
	require.NoError(t, s.Update(ctx, func(tx jobstore.Tx) error {
		if _, err := tx.AllocIDs(3); err != nil {
			return err
		}
		if err := tx.CreateJob(&jobstore.Job{ID: 1, Kind: "k", State: jobstore.StatePending}, []byte(`{"a":1}`)); err != nil {
			return err
		}
		if err := tx.CreateJob(&jobstore.Job{ID: 2, Kind: "k", State: jobstore.StatePending}, nil); err != nil {
			return err
		}
		return tx.PutResult(1, []byte(`42`))
	}))
	require.NoError(t, s.View(ctx, func(tx jobstore.ReadTx) error {
		v, ok := tx.(jobstore.Viewer)
		require.True(t, ok, "a bbolt transaction lends its bytes")
		for _, id := range []jobstore.JobID{1, 2, 3} {
			in, err1 := tx.Input(id)
			view, err2 := v.InputView(id)
			require.Equal(t, in, view, "input of %d", id)
			require.Equal(t, errors.Is(err1, jobstore.ErrNotFound), errors.Is(err2, jobstore.ErrNotFound), "input of %d", id)
			res, err1 := tx.Result(id)
			view, err2 = v.ResultView(id)
			require.Equal(t, res, view, "result of %d", id)
			require.Equal(t, errors.Is(err1, jobstore.ErrNotFound), errors.Is(err2, jobstore.ErrNotFound), "result of %d", id)
		}
		in, _ := v.InputView(1)
		require.Equal(t, `{"a":1}`, string(in))
		return nil
	}))
}
