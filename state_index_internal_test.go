package gaffer

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// The index agrees with a map through puts and removals in any order,
// including IDs below its window, and lets its pages go once empty.
func TestJobIndexAgreesWithAMap(t *testing.T) {
	var x jobIndex
	want := map[JobID]*ljob{}
	rng := rand.New(rand.NewPCG(1, 2))
	ids := func() JobID { return JobID(1 + rng.IntN(5000)) }
	for range 20000 {
		id := ids()
		if rng.IntN(3) == 0 {
			x.del(id)
			delete(want, id)
		} else {
			j := &ljob{id: id}
			x.put(j)
			want[id] = j
		}
		probe := ids()
		require.Same(t, want[probe], x.get(probe), "job %d", probe)
	}
	require.Equal(t, len(want), x.len())
	var last JobID
	n := 0
	for id, j := range x.all() {
		require.Greater(t, id, last, "all yields in ID order")
		require.Same(t, want[id], j)
		last = id
		n++
	}
	require.Equal(t, len(want), n)
	for id := range want {
		x.del(id)
	}
	require.Zero(t, x.len())
	require.Empty(t, x.pages, "every page let go")
	require.Nil(t, x.get(1))
}

// A long run whose jobs come and go keeps pages for the live IDs only;
// without a long-lived job below them, the window itself follows them.
func TestJobIndexLetsPagesGo(t *testing.T) {
	for _, withRoot := range []bool{true, false} {
		var x jobIndex
		root := &ljob{id: 1}
		x.put(root)
		for id := JobID(2); id < 1_000_000; id++ {
			x.put(&ljob{id: id})
			if id > 1001 || (!withRoot && id > 1000) {
				x.del(id - 1000)
			}
		}
		live := 0
		for _, p := range x.pages {
			if p != nil {
				live++
			}
		}
		require.LessOrEqual(t, live, 1+1000/indexPage+2, "withRoot %v", withRoot)
		if withRoot {
			require.Equal(t, 1001, x.len())
			require.Same(t, root, x.get(1))
		} else {
			require.Equal(t, 1000, x.len())
			require.LessOrEqual(t, len(x.pages), 1000/indexPage+2)
		}
	}
}

// A queue that compacts itself keeps no pointer to a job it gave out,
// anywhere in its array: a kept pointer keeps the job's whole slab.
func TestQueueLetsPoppedJobsGo(t *testing.T) {
	var q ljobQueue
	jobs := make([]*ljob, 5000)
	for i := range jobs {
		jobs[i] = &ljob{id: JobID(i + 1)}
		q.push(jobs[i])
	}
	popped := map[*ljob]bool{}
	for range 3000 {
		j := q.pop(func(*ljob) bool { return true })
		require.NotNil(t, j)
		popped[j] = true
	}
	all := q.items[:cap(q.items)]
	for i, j := range all {
		if j != nil {
			require.False(t, popped[j], "slot %d (len %d) still points at job %s, given out", i, len(q.items), j.id)
		}
	}
	require.Equal(t, 2000, q.len())
}
