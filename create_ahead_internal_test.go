package gaffer

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/gafferhq/gaffer/batchsystem/local"
	"github.com/gafferhq/gaffer/jobstore"
	"github.com/stretchr/testify/require"
)

var (
	aheadLeaf = MustRegister("test.ahead.leaf", func(ctx context.Context, jc *JobContext, i int) (int, error) { return i, nil })
	aheadSum  = MustRegister("test.ahead.sum", func(ctx context.Context, jc *JobContext, xs []int) (int, error) {
		t := 0
		for _, x := range xs {
			t += x
		}
		return t, nil
	})
	aheadRoot = MustRegister("test.ahead.root", func(ctx context.Context, jc *JobContext, n int) (int, error) {
		parts := make([]Input[int], n)
		for i := range n {
			leaf := aheadLeaf.New(i)
			jc.AddChild(leaf)
			parts[i] = leaf.Result()
		}
		sum := aheadSum.NewFrom(Collect(parts...))
		jc.AddFollowOn(sum)
		return Forward(jc, sum.Result())
	})
)

// dyingStore is a bbolt store whose leader dies, as far as the store can
// tell, after a number of createAhead's transactions: every commit after
// them fails, so the store keeps what a SIGKILL at that point would.
type dyingStore struct {
	*jobstore.Bolt
	chunks atomic.Int32 // createAhead transactions committed
	after  int32
}

var errDied = errors.New("injected: the leader died")

func (s *dyingStore) Update(ctx context.Context, fn func(jobstore.Tx) error) error {
	if s.chunks.Load() >= s.after {
		return errDied
	}
	return s.Bolt.Update(ctx, func(tx jobstore.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if m, err := tx.Meta(); err == nil && m.Creating != nil {
			tx.OnCommit(func() { s.chunks.Add(1) })
		}
		return nil
	})
}

// A fan-out big enough to be stored ahead of its creator's success, cut
// off after two of its transactions: the next leader deletes what they
// stored before it loads, runs the root again, and every leaf runs once.
func TestCreateAheadCutOff(t *testing.T) {
	defer func(h, c int) { hugeFragment, createChunk = h, c }(hugeFragment, createChunk)
	hugeFragment, createChunk = 100, 30
	const n = 200
	path := filepath.Join(t.TempDir(), "wf.db")
	leader := func(store jobstore.Store) *Leader {
		bs, err := local.New(local.Options{Cores: 2, Memory: 1 << 30, Disk: 1 << 30})
		require.NoError(t, err)
		t.Cleanup(func() { bs.Shutdown(context.Background()) })
		l, err := NewLeader(Config{JobStore: store, BatchSystem: bs, WorkDir: path + ".work",
			DefaultRequirements: Requirements{Cores: 0.1, Memory: 1 << 20, Disk: 1 << 20}})
		require.NoError(t, err)
		t.Cleanup(func() { l.Close() })
		return l
	}

	b, err := jobstore.OpenBolt(path, nil)
	require.NoError(t, err)
	_, err = Run(context.Background(), leader(&dyingStore{Bolt: b, after: 2}), aheadRoot.New(n))
	require.ErrorIs(t, err, errDied)
	var cut jobstore.IDRange
	require.NoError(t, b.View(context.Background(), func(tx jobstore.ReadTx) error {
		m, err := tx.Meta()
		require.NoError(t, err)
		require.NotNil(t, m.Creating, "the creation was cut off")
		cut = *m.Creating
		stored := 0
		for j, err := range tx.Jobs() {
			require.NoError(t, err)
			if j.ID >= cut.First && j.ID < cut.First+JobID(cut.N) {
				stored++
			}
		}
		require.Equal(t, 60, stored, "two transactions of 30 landed")
		return nil
	}))
	require.EqualValues(t, n+1, cut.N, "the leaves and the sum")
	require.NoError(t, b.Close())

	b, err = jobstore.OpenBolt(path, nil)
	require.NoError(t, err)
	defer b.Close()
	sum, err := Run(context.Background(), leader(b), aheadRoot.New(n))
	require.NoError(t, err)
	require.Equal(t, n*(n-1)/2, sum)
	require.NoError(t, b.View(context.Background(), func(tx jobstore.ReadTx) error {
		m, err := tx.Meta()
		require.NoError(t, err)
		require.Nil(t, m.Creating)
		leaves := 0
		for a, err := range tx.Attempts(0) {
			require.NoError(t, err)
			if a.Job >= cut.First && a.Job < cut.First+JobID(cut.N) {
				t.Errorf("job %s, of the creation cut off, ran", a.Job)
			}
			if a.Kind == "test.ahead.leaf" {
				leaves++
			}
		}
		require.Equal(t, n, leaves, "every leaf ran once")
		return nil
	}))
}

// A fan-in with more readers than a transaction deletes: the results it
// read are deleted all the same, in later transactions, and the store
// ends holding only the root's and the one it forwards to.
func TestManyDroppedResultsDeletedLater(t *testing.T) {
	defer func(c int) { createChunk = c }(createChunk)
	createChunk = 30
	const n = 200
	path := filepath.Join(t.TempDir(), "wf.db")
	bs, err := local.New(local.Options{Cores: 2, Memory: 1 << 30, Disk: 1 << 30})
	require.NoError(t, err)
	defer bs.Shutdown(context.Background())
	l, err := NewLeader(Config{Store: path, BatchSystem: bs,
		DefaultRequirements: Requirements{Cores: 0.1, Memory: 1 << 20, Disk: 1 << 20}})
	require.NoError(t, err)
	sum, err := Run(context.Background(), l, aheadRoot.New(n))
	require.NoError(t, err)
	require.Equal(t, n*(n-1)/2, sum)
	require.NoError(t, l.Close())
	b, err := jobstore.OpenBolt(path, nil)
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, b.View(context.Background(), func(tx jobstore.ReadTx) error {
		var kept []string
		for id := JobID(1); id < JobID(n+3); id++ {
			if _, err := tx.Result(id); err == nil {
				kept = append(kept, id.String())
			}
		}
		require.Len(t, kept, 2, "the root's and the sum's it forwards to: %v", kept)
		return nil
	}))
}
