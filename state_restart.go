package gaffer

import (
	"slices"

	"github.com/gafferhq/gaffer/jobstore"
)

// restart gives a failed workflow another run, on the records just
// loaded and before reload: every job that failed totally, was skipped
// because of a failure, or failed because a successor or service did,
// runs again, with a fresh budget of tries for those that fail by their
// own error; what succeeded is not redone. A failed checkpoint runs again
// from its body, its old subtree removed, as Toil restarts checkpoints.
// Cancelled jobs stay cancelled. It returns how many jobs it set going
// again.
func (g *graph) restart() int {
	ids := make([]JobID, 0, g.jobs.len())
	for id, j := range g.jobs.all() {
		if j.state == jobstore.StateFailed || j.state == jobstore.StateSkipped {
			ids = append(ids, id)
		}
	}
	// Parents before the jobs their bodies made: a checkpoint's subtree
	// is gone before the loop reaches it.
	slices.Sort(ids)
	n := 0
	for _, id := range ids {
		j := g.jobs.get(id)
		if j == nil {
			continue // in a restarted checkpoint's subtree
		}
		n++
		switch {
		case j.state == jobstore.StateSkipped:
			j.ext().cause = 0
			j.compact()
			g.setState(j, jobstore.StatePending)
		case j.checkpoint:
			g.walkSubtree(j, g.remove)
			j.succ = nil
			g.freshTries(j)
		case j.svc() != nil || j.extra().lastError != "":
			// Failed by its own error: its body runs again.
			g.freshTries(j)
		default:
			// Its body ran; a successor or service failed. It waits
			// again in the phase it failed in: its children's, if any
			// of them is still there (the others are done).
			state := jobstore.StateFollowOns
			if g.anyLive(j.children()) || !g.anyLive(j.followOns()) {
				state = jobstore.StateChildren
			}
			g.setState(j, state)
		}
	}
	g.failedOwn = slices.DeleteFunc(g.failedOwn, func(id JobID) bool {
		j := g.jobs.get(id)
		return j == nil || j.state != jobstore.StateFailed
	})
	if n > 0 {
		g.outcome = jobstore.StatusRunning
	}
	return n
}

// freshTries makes j pending again with its whole budget of tries.
func (g *graph) freshTries(j *ljob) {
	j.tries = 0
	if x := j.x; x != nil {
		x.lastError, x.logTail, x.backoff, x.notBefore, x.backing = "", "", 0, 0, backingRef{}
		j.compact()
	}
	g.setState(j, jobstore.StatePending)
}

func (g *graph) anyLive(ids jobstore.IDList) bool {
	for id := range ids.All() {
		if g.jobs.get(id) != nil {
			return true
		}
	}
	return false
}
