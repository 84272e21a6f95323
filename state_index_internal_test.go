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

// The queue gives jobs out in the order they came, skips those gone
// stale or removed, and keeps consecutive IDs as one run.
func TestQueueOrderAndRuns(t *testing.T) {
	var x jobIndex
	var q ljobQueue
	job := func(id JobID) *ljob {
		if j := x.get(id); j != nil {
			return j
		}
		j := &ljob{id: id, where: inReady}
		x.put(j)
		return j
	}
	for id := JobID(1); id <= 5000; id++ {
		q.push(job(id))
	}
	require.Len(t, q.runs, 1, "consecutive IDs are one run")
	q.push(job(9))    // again, out of order
	q.push(job(7000)) // a new run
	job(3).where = nowhere
	x.del(4)
	live := func(j *ljob) bool { return j.where == inReady }
	var got []JobID
	for j := q.pop(&x, live); j != nil; j = q.pop(&x, live) {
		got = append(got, j.id)
		j.where = nowhere // issued, as the graph would
	}
	require.Equal(t, JobID(1), got[0])
	require.Equal(t, JobID(2), got[1])
	require.Equal(t, JobID(5), got[2], "3 went stale and 4 is gone")
	require.Equal(t, []JobID{5000, 7000}, got[len(got)-2:], "9's second entry went stale")
	require.Equal(t, 4999, len(got))
	require.Zero(t, q.len())
}
