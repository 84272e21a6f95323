// Package jobstoretest is a conformance suite for jobstore.Store. Every
// implementation, including a user's, can run it:
//
//	func TestMyStore(t *testing.T) {
//		jobstoretest.Run(t, func(t *testing.T, dir string) (jobstore.Store, error) {
//			return mystore.Open(filepath.Join(dir, "wf"))
//		})
//	}
//
// Open must return a store persisted under dir: the suite opens the same
// dir twice to check that committed writes survive a reopen.
package jobstoretest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/jobstore"
)

// Opener opens (creating if needed) the store kept under dir.
type Opener func(t *testing.T, dir string) (jobstore.Store, error)

// Run runs the conformance suite against stores made by open.
func Run(t *testing.T, open Opener) {
	t.Run("FreshStoreIsNew", func(t *testing.T) { testFresh(t, open) })
	t.Run("CreateLoadUpdateDelete", func(t *testing.T) { testCRUD(t, open) })
	t.Run("IterateByState", func(t *testing.T) { testIterate(t, open) })
	t.Run("AllocIDsIncrease", func(t *testing.T) { testAlloc(t, open) })
	t.Run("FailedUpdateLeavesNothing", func(t *testing.T) { testRollback(t, open) })
	t.Run("ResultsOutliveJobs", func(t *testing.T) { testResults(t, open) })
	t.Run("OnCommitRunsAfterTheCommit", func(t *testing.T) { testOnCommit(t, open) })
	t.Run("DeletedResultIsGone", func(t *testing.T) { testDeleteResult(t, open) })
	t.Run("PipelinedCommit", func(t *testing.T) { testPipelined(t, open) })
	t.Run("AttemptsByJobInIssueOrder", func(t *testing.T) { testAttempts(t, open) })
	t.Run("SurvivesReopen", func(t *testing.T) { testReopen(t, open) })
	t.Run("ClosedStoreRefuses", func(t *testing.T) { testClosed(t, open) })
}

func mustOpen(t *testing.T, open Opener, dir string) jobstore.Store {
	t.Helper()
	s, err := open(t, dir)
	require.NoError(t, err)
	return s
}

func sample(id jobstore.JobID, st jobstore.State) *jobstore.Job {
	return &jobstore.Job{
		ID: id, Kind: "test.kind", Name: fmt.Sprintf("job-%d", id), State: st,
		Preds:        []jobstore.JobID{1},
		Children:     jobstore.IDList{}.Append(id + 100).Append(id + 101),
		Requirements: batchsystem.Requirements{Cores: 0.5, Memory: 1 << 20, Disk: 2 << 20},
		Retries:      2, Tries: 1, Backoff: 2 * time.Second,
	}
}

func testFresh(t *testing.T, open Opener) {
	s := mustOpen(t, open, t.TempDir())
	defer s.Close()
	require.NoError(t, s.View(t.Context(), func(tx jobstore.ReadTx) error {
		m, err := tx.Meta()
		require.NoError(t, err)
		require.NotEmpty(t, m.WorkflowID)
		require.Equal(t, jobstore.StatusNew, m.Status)
		_, err = tx.RootResult()
		require.ErrorIs(t, err, jobstore.ErrNotFound)
		n := 0
		for range tx.Jobs() {
			n++
		}
		require.Zero(t, n)
		return nil
	}))
}

func testCRUD(t *testing.T, open Opener) {
	ctx := t.Context()
	s := mustOpen(t, open, t.TempDir())
	defer s.Close()
	j := sample(7, jobstore.StatePending)
	require.NoError(t, s.Update(ctx, func(tx jobstore.Tx) error { return tx.CreateJob(j, []byte(`{"x":1}`)) }))
	err := s.Update(ctx, func(tx jobstore.Tx) error { return tx.CreateJob(j, nil) })
	require.ErrorIs(t, err, jobstore.ErrExists)

	require.NoError(t, s.View(ctx, func(tx jobstore.ReadTx) error {
		got, err := tx.Job(7)
		require.NoError(t, err)
		require.Equal(t, j, got)
		in, err := tx.Input(7)
		require.NoError(t, err)
		require.JSONEq(t, `{"x":1}`, string(in))
		return nil
	}))

	j.State = jobstore.StateChildren
	j.LastError = "boom"
	require.NoError(t, s.Update(ctx, func(tx jobstore.Tx) error { return tx.UpdateJob(j) }))
	require.NoError(t, s.View(ctx, func(tx jobstore.ReadTx) error {
		got, err := tx.Job(7)
		require.NoError(t, err)
		require.Equal(t, jobstore.StateChildren, got.State)
		require.Equal(t, "boom", got.LastError)
		return nil
	}))

	missing := sample(8, jobstore.StatePending)
	err = s.Update(ctx, func(tx jobstore.Tx) error { return tx.UpdateJob(missing) })
	require.ErrorIs(t, err, jobstore.ErrNotFound)

	// Updating the record keeps the input.
	j.Name = "renamed"
	require.NoError(t, s.Update(ctx, func(tx jobstore.Tx) error { return tx.UpdateJob(j) }))
	require.NoError(t, s.View(ctx, func(tx jobstore.ReadTx) error {
		in, err := tx.Input(7)
		require.NoError(t, err)
		require.JSONEq(t, `{"x":1}`, string(in))
		got, err := tx.Job(7)
		require.NoError(t, err)
		require.Equal(t, "renamed", got.Name)
		return nil
	}))

	require.NoError(t, s.Update(ctx, func(tx jobstore.Tx) error { return tx.DeleteJob(7) }))
	require.NoError(t, s.Update(ctx, func(tx jobstore.Tx) error { return tx.DeleteJob(7) }), "deleting twice is fine")
	require.NoError(t, s.View(ctx, func(tx jobstore.ReadTx) error {
		_, err := tx.Job(7)
		require.ErrorIs(t, err, jobstore.ErrNotFound)
		_, err = tx.Input(7)
		require.ErrorIs(t, err, jobstore.ErrNotFound, "the input goes with the job")
		return nil
	}))
}

func testIterate(t *testing.T, open Opener) {
	ctx := t.Context()
	s := mustOpen(t, open, t.TempDir())
	defer s.Close()
	states := []jobstore.State{jobstore.StatePending, jobstore.StateChildren, jobstore.StateFailed, jobstore.StatePending, jobstore.StateDone}
	require.NoError(t, s.Update(ctx, func(tx jobstore.Tx) error {
		for i, st := range states {
			if err := tx.CreateJob(sample(jobstore.JobID(10-i), st), nil); err != nil {
				return err
			}
		}
		return nil
	}))
	require.NoError(t, s.View(ctx, func(tx jobstore.ReadTx) error {
		var ids []jobstore.JobID
		for j, err := range tx.Jobs(jobstore.StatePending, jobstore.StateFailed) {
			require.NoError(t, err)
			ids = append(ids, j.ID)
		}
		require.Equal(t, []jobstore.JobID{7, 8, 10}, ids, "filtered, in ID order")
		ids = ids[:0]
		for j, err := range tx.Jobs() {
			require.NoError(t, err)
			ids = append(ids, j.ID)
		}
		require.Equal(t, []jobstore.JobID{6, 7, 8, 9, 10}, ids)
		// Stopping early must be allowed.
		for range tx.Jobs() {
			break
		}
		return nil
	}))
}

func testAlloc(t *testing.T, open Opener) {
	ctx := t.Context()
	dir := t.TempDir()
	s := mustOpen(t, open, dir)
	var a, b jobstore.JobID
	require.NoError(t, s.Update(ctx, func(tx jobstore.Tx) (err error) { a, err = tx.AllocIDs(10); return err }))
	require.NoError(t, s.Update(ctx, func(tx jobstore.Tx) (err error) { b, err = tx.AllocIDs(1); return err }))
	require.NotZero(t, a)
	require.GreaterOrEqual(t, b, a+10, "ranges never overlap")
	require.NoError(t, s.Close())
	s = mustOpen(t, open, dir)
	defer s.Close()
	var c jobstore.JobID
	require.NoError(t, s.Update(ctx, func(tx jobstore.Tx) (err error) { c, err = tx.AllocIDs(1); return err }))
	require.Greater(t, c, b, "IDs are not reused after a reopen")
	err := s.Update(ctx, func(tx jobstore.Tx) error { _, err := tx.AllocIDs(0); return err })
	require.Error(t, err)
}

func testRollback(t *testing.T, open Opener) {
	ctx := t.Context()
	s := mustOpen(t, open, t.TempDir())
	defer s.Close()
	boom := errors.New("boom")
	err := s.Update(ctx, func(tx jobstore.Tx) error {
		require.NoError(t, tx.CreateJob(sample(1, jobstore.StatePending), []byte("1")))
		require.NoError(t, tx.PutResult(1, []byte("2")))
		require.NoError(t, tx.PutAttempt(&jobstore.Attempt{Job: 1, N: 1, Epoch: 1, Seq: 1, Kind: "k"}))
		tx.OnCommit(func() { t.Error("OnCommit ran for a transaction that did not commit") })
		return boom
	})
	require.ErrorIs(t, err, boom)
	require.NoError(t, s.View(ctx, func(tx jobstore.ReadTx) error {
		_, err := tx.Job(1)
		require.ErrorIs(t, err, jobstore.ErrNotFound)
		_, err = tx.Result(1)
		require.ErrorIs(t, err, jobstore.ErrNotFound)
		for range tx.Attempts(0) {
			t.Error("an attempt of a rolled-back transaction is kept")
		}
		return nil
	}))
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, s.Update(cancelled, func(jobstore.Tx) error { return nil }), context.Canceled)
}

func testResults(t *testing.T, open Opener) {
	ctx := t.Context()
	s := mustOpen(t, open, t.TempDir())
	defer s.Close()
	require.NoError(t, s.Update(ctx, func(tx jobstore.Tx) error {
		require.NoError(t, tx.CreateJob(sample(3, jobstore.StatePending), nil))
		require.NoError(t, tx.PutResult(3, []byte(`[1,2]`)))
		require.NoError(t, tx.DeleteJob(3))
		return tx.SetRootResult([]byte(`"done"`))
	}))
	require.NoError(t, s.View(ctx, func(tx jobstore.ReadTx) error {
		v, err := tx.Result(3)
		require.NoError(t, err)
		require.Equal(t, `[1,2]`, string(v))
		v, err = tx.RootResult()
		require.NoError(t, err)
		require.Equal(t, `"done"`, string(v))
		return nil
	}))
}

func testDeleteResult(t *testing.T, open Opener) {
	ctx := t.Context()
	s := mustOpen(t, open, t.TempDir())
	defer s.Close()
	require.NoError(t, s.Update(ctx, func(tx jobstore.Tx) error {
		require.NoError(t, tx.PutResult(4, []byte(`4`)))
		return tx.PutResult(5, []byte(`5`))
	}))
	require.NoError(t, s.Update(ctx, func(tx jobstore.Tx) error {
		require.NoError(t, tx.DeleteResult(4))
		return tx.DeleteResult(6) // none: not an error
	}))
	require.NoError(t, s.View(ctx, func(tx jobstore.ReadTx) error {
		_, err := tx.Result(4)
		require.ErrorIs(t, err, jobstore.ErrNotFound)
		v, err := tx.Result(5)
		require.NoError(t, err)
		require.Equal(t, `5`, string(v), "the others stay")
		return nil
	}))
}

// testPipelined checks a store that implements jobstore.Pipeliner: what
// a background commit wrote is there once Wait returns, OnCommit runs in
// Wait, a failed transaction keeps nothing, and a later Update waits for
// the commit in flight.
func testPipelined(t *testing.T, open Opener) {
	ctx := t.Context()
	s := mustOpen(t, open, t.TempDir())
	defer s.Close()
	pl, ok := s.(jobstore.Pipeliner)
	if !ok {
		t.Skip("the store commits only with Update")
	}
	ran := false
	c, err := pl.UpdateAsync(ctx, func(tx jobstore.Tx) error {
		tx.OnCommit(func() { ran = true })
		return tx.PutResult(1, []byte(`1`))
	})
	require.NoError(t, err)
	require.False(t, ran, "OnCommit waits for Wait")
	require.NoError(t, s.Update(ctx, func(tx jobstore.Tx) error {
		// Runs once the commit in flight has ended: it sees its write.
		_, err := tx.Result(1)
		require.NoError(t, err)
		return tx.PutResult(2, []byte(`2`))
	}))
	<-c.Done()
	require.NoError(t, c.Wait())
	require.True(t, ran)
	require.NoError(t, c.Wait(), "Wait again: same answer, OnCommit not run twice")

	boom := errors.New("boom")
	c, err = pl.UpdateAsync(ctx, func(tx jobstore.Tx) error {
		require.NoError(t, tx.PutResult(3, []byte(`3`)))
		tx.OnCommit(func() { t.Error("OnCommit ran for a transaction that failed") })
		return boom
	})
	require.ErrorIs(t, err, boom)
	require.Nil(t, c)
	require.NoError(t, s.View(ctx, func(tx jobstore.ReadTx) error {
		_, err := tx.Result(3)
		require.ErrorIs(t, err, jobstore.ErrNotFound)
		return nil
	}))
}

func testOnCommit(t *testing.T, open Opener) {
	ctx := t.Context()
	s := mustOpen(t, open, t.TempDir())
	defer s.Close()
	var order []string
	require.NoError(t, s.Update(ctx, func(tx jobstore.Tx) error {
		tx.OnCommit(func() {
			order = append(order, "after")
			// The commit is visible to the effects that follow it.
			require.NoError(t, s.View(ctx, func(tx jobstore.ReadTx) error {
				_, err := tx.Result(1)
				return err
			}))
		})
		order = append(order, "in")
		return tx.PutResult(1, []byte("2"))
	}))
	require.Equal(t, []string{"in", "after"}, order)
}

func testAttempts(t *testing.T, open Opener) {
	ctx := t.Context()
	dir := t.TempDir()
	s := mustOpen(t, open, dir)
	at := time.Date(2030, 1, 2, 3, 4, 5, 600, time.UTC)
	full := jobstore.Attempt{
		Job: 7, N: 2, Epoch: 3, Seq: 40, Kind: "k", Name: "seven", Preds: []jobstore.JobID{1, 5},
		Requirements: batchsystem.Requirements{Cores: 0.5, Memory: 1 << 30, Disk: 2 << 30, Preemptible: true, Walltime: time.Hour,
			Accelerators: []batchsystem.Accelerator{{Kind: "gpu", Count: 2, Model: "m"}}},
		BatchSystem: "slurm", BatchID: "12", Backing: "4711", Node: "n1",
		Start: at, End: at.Add(time.Second), Wall: time.Second, CPU: 900 * time.Millisecond, MaxRSS: 64 << 20,
		ExitCode: 1, Reason: "failed", Error: "boom", Log: "/w/logs/7/2-3.40.log",
	}
	bare := jobstore.Attempt{Job: 7, N: 1, Epoch: 2, Seq: 9, Kind: "k", OK: true, Reason: "finished"}
	other := jobstore.Attempt{Job: 8, N: 1, Epoch: 3, Seq: 41, Kind: "j", OK: true}
	require.NoError(t, s.Update(ctx, func(tx jobstore.Tx) error {
		for _, a := range []jobstore.Attempt{other, full, bare} {
			if err := tx.PutAttempt(&a); err != nil {
				return err
			}
		}
		return nil
	}))
	require.NoError(t, s.Close())
	s = mustOpen(t, open, dir)
	defer s.Close()
	collect := func(job jobstore.JobID) (out []jobstore.Attempt) {
		require.NoError(t, s.View(ctx, func(tx jobstore.ReadTx) error {
			for a, err := range tx.Attempts(job) {
				if err != nil {
					return err
				}
				out = append(out, *a)
			}
			return nil
		}))
		return out
	}
	require.Equal(t, []jobstore.Attempt{bare, full}, collect(7), "a job's attempts, in the order they were issued")
	require.Equal(t, []jobstore.Attempt{other}, collect(8))
	require.Empty(t, collect(9))
	require.Equal(t, []jobstore.Attempt{bare, full, other}, collect(0), "every attempt")
}

func testReopen(t *testing.T, open Opener) {
	ctx := t.Context()
	dir := t.TempDir()
	s := mustOpen(t, open, dir)
	var wf string
	require.NoError(t, s.Update(ctx, func(tx jobstore.Tx) error {
		m, err := tx.Meta()
		require.NoError(t, err)
		wf = m.WorkflowID
		m.Root, m.Status, m.Epoch = 5, jobstore.StatusRunning, 3
		require.NoError(t, tx.SetMeta(m))
		return tx.CreateJob(sample(5, jobstore.StateFollowOns), []byte("42"))
	}))
	require.NoError(t, s.Close())
	s = mustOpen(t, open, dir)
	defer s.Close()
	require.NoError(t, s.View(ctx, func(tx jobstore.ReadTx) error {
		m, err := tx.Meta()
		require.NoError(t, err)
		require.Equal(t, wf, m.WorkflowID)
		require.Equal(t, jobstore.JobID(5), m.Root)
		require.Equal(t, jobstore.StatusRunning, m.Status)
		require.Equal(t, uint64(3), m.Epoch)
		j, err := tx.Job(5)
		require.NoError(t, err)
		require.Equal(t, sample(5, jobstore.StateFollowOns), j)
		return nil
	}))
}

func testClosed(t *testing.T, open Opener) {
	s := mustOpen(t, open, t.TempDir())
	require.NoError(t, s.Close())
	err := s.View(t.Context(), func(jobstore.ReadTx) error { return nil })
	require.ErrorIs(t, err, jobstore.ErrClosed)
}
