package gaffer

import (
	"slices"

	"github.com/gafferhq/gaffer/jobstore"
)

// Results are kept only while a job may still read them. A job reads the
// results its input (and its requirements) promise; it holds them until
// its body has succeeded, or, for a checkpoint, whose body runs again if
// its subtree fails, until it has finished for good. A result that
// promises others (a job that returned Forward) holds those for as long
// as the workflow runs, as does the root's. Once nothing holds a result,
// the plan deletes it, in the same transaction as the event that let it
// go: a leader that dies before the commit still finds it.
//
// After a restart, the leader counts the holds of the live jobs only: a
// result whose job had finished for good before the restart is kept to
// the workflow's end, since whether a stored result forwards to it is not
// known without reading every result.

// noteReads records that job j reads the results promised in its input
// and in its requirements (rf, JSON).
func (g *graph) noteReads(j *ljob, input []byte, rf string) { g.noteReadsOf(j, input, rf, false) }

// noteReadsOf is noteReads; with liveOnly, only of jobs in the graph.
func (g *graph) noteReadsOf(j *ljob, input []byte, rf string, liveOnly bool) {
	var ids []JobID
	add := func(ph placeholder) ([]byte, error) {
		id := JobID(ph.Job)
		if id != j.id && (!liveOnly || g.jobs.get(id) != nil) {
			ids = append(ids, id)
		}
		return nil, nil
	}
	if j.inputPromises {
		mapPlaceholders(input, add) //nolint:errcheck // add never fails; bad placeholders were refused at ingest
	}
	if rf != "" {
		mapPlaceholders([]byte(rf), add) //nolint:errcheck
	}
	if len(ids) == 0 {
		return
	}
	// A job may read a result twice (two paths into it): one hold.
	slices.Sort(ids)
	ids = slices.Compact(ids)
	for _, id := range ids {
		g.addHold(id)
	}
	if g.reads == nil {
		g.reads = map[JobID]jobstore.IDList{}
	}
	// As runs of IDs: a fan-in reads a fan-out's consecutive million.
	var list jobstore.IDList
	for _, id := range ids {
		list = list.Append(id)
	}
	g.reads[j.id] = slices.Clip(list)
}

// holdForever keeps the results promised in value, a result that
// forwards to them, for the rest of the run.
func (g *graph) holdForever(value []byte) {
	mapPlaceholders(value, func(ph placeholder) ([]byte, error) { //nolint:errcheck
		g.hold(JobID(ph.Job))
		return nil, nil
	})
}

func (g *graph) hold(id JobID) {
	g.addHold(id)
	if j := g.jobs.get(id); j != nil && !j.forwarded {
		j.forwarded = true // recorded, so that a later leader holds it too
		g.touch(j)
	}
}

// doneReading lets go of the results j read: its body succeeded (and it
// is no checkpoint), or it is gone for good.
func (g *graph) doneReading(j *ljob) {
	ids, ok := g.reads[j.id]
	if !ok {
		return
	}
	delete(g.reads, j.id)
	for id := range ids.All() {
		if g.dropHold(id) && id != g.root {
			g.plan.dropped = append(g.plan.dropped, id)
		}
	}
}

// Holds are counted in two parts, because most results have one reader:
// held has a bit per job ID for the first hold (a million jobs cost 125
// KiB), and more counts those beyond it, for the few with several.

func (g *graph) addHold(id JobID) {
	w, bit := int(id/64), uint64(1)<<(id%64)
	if w >= len(g.held) {
		g.held = slices.Grow(g.held, w+1-len(g.held))[:w+1]
	}
	if g.held[w]&bit == 0 {
		g.held[w] |= bit
		return
	}
	if g.more == nil {
		g.more = map[JobID]int32{}
	}
	g.more[id]++
}

// dropHold lets go of one hold on id's result, and reports whether it
// was the last.
func (g *graph) dropHold(id JobID) bool {
	if n := g.more[id]; n > 0 {
		if n == 1 {
			delete(g.more, id)
		} else {
			g.more[id] = n - 1
		}
		return false
	}
	w, bit := int(id/64), uint64(1)<<(id%64)
	if w >= len(g.held) || g.held[w]&bit == 0 {
		return false // not held: nothing to let go (cannot happen)
	}
	g.held[w] &^= bit
	return true
}

// mayRead reports whether a stored job may still read the results it was
// promised: its body has not succeeded, or it is a checkpoint.
func mayRead(r *jobstore.Job) bool {
	if !r.InputPromises && r.RequirementsFrom == "" {
		return false
	}
	switch r.State {
	case jobstore.StateServices, jobstore.StateChildren, jobstore.StateFollowOns, jobstore.StateDone:
		return r.Checkpoint
	}
	return true
}

// reloadReads counts, after a restart, the holds of the live jobs on
// each other's results: those of readers (inputs by job) and those of
// forwarding results (the forwarded flag).
func (g *graph) reloadReads(inputs map[JobID][]byte) {
	for id, in := range inputs {
		if j := g.jobs.get(id); j != nil {
			g.noteReadsOf(j, in, j.extra().reqFrom, true)
		}
	}
	for _, j := range g.jobs.all() {
		if j.forwarded {
			g.addHold(j.id)
		}
	}
}
