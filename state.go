package gaffer

import (
	"container/heap"
	"fmt"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/jobstore"
)

// ljob is the leader's copy of a live job: the stored record plus what
// the leader derives from the records around it and never stores.
type ljob struct {
	jobstore.Job

	reached    int32 // predecessor edges that have reached this job
	pending    int32 // successors of the current phase not yet settled
	failedSucc bool  // a successor failed totally

	where   where
	bsID    batchsystem.ID
	seq     uint64 // issue number, unique for this leader
	heapIdx int
}

type where uint8

const (
	nowhere   where = iota
	inReady         // in the ready queue
	inBackoff       // waiting out a retry backoff
	isIssued        // handed to the batch system
)

// graph is the leader's in-memory state of the workflow. Its methods are
// the scheduling decisions: they change the in-memory state and record
// what must be written, and do no I/O themselves, so they can be tested
// without a store or batch system.
type graph struct {
	jobs  map[JobID]*ljob
	root  JobID
	kinds map[string]string // interned job type names

	ready     []*ljob
	readyHead int
	backoff   backoffHeap

	// Writes for the open transaction.
	dirty   map[JobID]*ljob
	deleted []JobID

	rootDone, rootFailed bool
	failedOwn            []JobID // jobs that failed by their own error
	skipped              int

	retryCount int
	backoff0   time.Duration
	factor     float64
	now        func() time.Time
}

func newGraph(retryCount int, backoff time.Duration, factor float64) *graph {
	return &graph{
		jobs: map[JobID]*ljob{}, kinds: map[string]string{}, dirty: map[JobID]*ljob{},
		retryCount: retryCount, backoff0: backoff, factor: factor, now: time.Now,
	}
}

func (g *graph) intern(s string) string {
	if k, ok := g.kinds[s]; ok {
		return k
	}
	g.kinds[s] = s
	return s
}

func (g *graph) touch(j *ljob) { g.dirty[j.ID] = j }

// makeReady queues a job whose predecessors have all reached it.
func (g *graph) makeReady(j *ljob) {
	if j.where != nowhere {
		return
	}
	if j.NotBefore > g.now().UnixNano() {
		j.where = inBackoff
		heap.Push(&g.backoff, j)
		return
	}
	j.where = inReady
	g.ready = append(g.ready, j)
}

// popReady takes the next ready job, skipping entries that went stale.
func (g *graph) popReady() *ljob {
	for g.readyHead < len(g.ready) {
		j := g.ready[g.readyHead]
		g.ready[g.readyHead] = nil
		g.readyHead++
		if g.readyHead > 1024 && g.readyHead*2 > len(g.ready) {
			g.ready = append(g.ready[:0], g.ready[g.readyHead:]...)
			g.readyHead = 0
		}
		if j.where == inReady && j.State == jobstore.StatePending {
			j.where = nowhere
			return j
		}
	}
	return nil
}

func (g *graph) readyLen() int { return len(g.ready) - g.readyHead }

// promoteBackoff moves jobs whose backoff has passed to the ready queue.
// It returns how long until the next one is due (0 if none waits).
func (g *graph) promoteBackoff() time.Duration {
	now := g.now().UnixNano()
	for g.backoff.Len() > 0 {
		j := g.backoff[0]
		if j.NotBefore > now {
			return time.Duration(j.NotBefore - now)
		}
		heap.Pop(&g.backoff)
		j.where = nowhere
		if j.State == jobstore.StatePending {
			j.where = inReady
			g.ready = append(g.ready, j)
		}
	}
	return 0
}

// bodyDone moves a job whose body succeeded on to its successors.
func (g *graph) bodyDone(j *ljob) {
	j.LastError, j.LogTail, j.NotBefore, j.Backing = "", "", 0, ""
	g.touch(j)
	switch {
	case j.Children.Len() > 0:
		j.State = jobstore.StateChildren
		g.reach(j, j.Children)
	case j.FollowOns.Len() > 0:
		j.State = jobstore.StateFollowOns
		g.reach(j, j.FollowOns)
	default:
		g.subtreeDone(j)
	}
}

// reach tells each job of p's current phase that p has reached it.
func (g *graph) reach(p *ljob, phase jobstore.IDList) {
	p.pending = 0
	for id := range phase.All() {
		s := g.jobs[id]
		if s == nil {
			continue // done already; cannot happen for a job not yet reached, but harmless
		}
		s.reached++
		switch s.State {
		case jobstore.StateFailed, jobstore.StateSkipped, jobstore.StateCancelled:
			p.failedSucc = true
			continue
		}
		p.pending++
		if s.State == jobstore.StatePending && int(s.reached) == len(s.Preds) {
			g.makeReady(s)
		}
	}
	if p.pending == 0 {
		g.phaseDone(p)
	}
}

// phaseDone is called when every successor of p's current phase settled.
func (g *graph) phaseDone(p *ljob) {
	switch {
	case p.failedSucc:
		g.failTotally(p, "")
	case p.State == jobstore.StateChildren && p.FollowOns.Len() > 0:
		p.State = jobstore.StateFollowOns
		g.touch(p)
		g.reach(p, p.FollowOns)
	default:
		g.subtreeDone(p)
	}
}

// subtreeDone removes a job whose subtree finished and tells its
// predecessors. The root is kept, marked done.
func (g *graph) subtreeDone(j *ljob) {
	j.State = jobstore.StateDone
	if j.ID == g.root {
		g.touch(j)
		g.rootDone = true
		return
	}
	delete(g.jobs, j.ID)
	delete(g.dirty, j.ID)
	g.deleted = append(g.deleted, j.ID)
	g.settlePreds(j, false)
}

func (g *graph) settlePreds(j *ljob, failed bool) {
	for _, pid := range j.Preds {
		p := g.jobs[pid]
		if p == nil {
			continue
		}
		if failed {
			p.failedSucc = true
		}
		p.pending--
		if p.pending == 0 {
			g.phaseDone(p)
		}
	}
}

// attemptFailed charges a failed attempt; the job is retried after its
// backoff if it has tries left, and fails totally otherwise.
func (g *graph) attemptFailed(j *ljob, msg, logTail string, permanent bool) {
	j.Tries++
	j.LastError, j.LogTail, j.Backing = msg, logTail, ""
	g.touch(j)
	retries := j.Retries
	if retries < 0 {
		retries = g.retryCount
	}
	if permanent || j.Tries > retries {
		g.failTotally(j, msg)
		return
	}
	switch {
	case j.Backoff == 0:
		j.Backoff = g.backoff0
	default:
		j.Backoff = time.Duration(float64(j.Backoff) * g.factor)
	}
	j.NotBefore = g.now().Add(j.Backoff).UnixNano()
	g.makeReady(j)
}

// failTotally marks j failed (msg "" means: because a successor failed),
// skips the successors it never reached, and tells its predecessors.
func (g *graph) failTotally(j *ljob, msg string) {
	was := j.State
	j.State = jobstore.StateFailed
	if msg != "" {
		j.LastError = msg
		g.failedOwn = append(g.failedOwn, j.ID)
	}
	g.touch(j)
	if was == jobstore.StatePending {
		for id := range j.Children.All() {
			g.skip(id, j.ID)
		}
	}
	if was == jobstore.StatePending || was == jobstore.StateChildren {
		for id := range j.FollowOns.All() {
			g.skip(id, j.ID)
		}
	}
	if j.ID == g.root {
		g.rootFailed = true
		return
	}
	g.settlePreds(j, true)
}

// skip marks a job that will never run because cause failed, with its
// own successors, and settles it for the predecessors that reached it.
func (g *graph) skip(id, cause JobID) {
	s := g.jobs[id]
	if s == nil || s.State != jobstore.StatePending || s.where == isIssued {
		return
	}
	s.State, s.Cause = jobstore.StateSkipped, cause
	g.skipped++
	g.touch(s)
	for _, qid := range s.Preds {
		q := g.jobs[qid]
		if q != nil && q.hasReached(id) {
			q.failedSucc = true
			q.pending--
			if q.pending == 0 {
				g.phaseDone(q)
			}
		}
	}
	for c := range s.Children.All() {
		g.skip(c, cause)
	}
	for f := range s.FollowOns.All() {
		g.skip(f, cause)
	}
}

func (j *ljob) hasReached(s JobID) bool {
	switch j.State {
	case jobstore.StateChildren:
		return j.Children.Contains(s)
	case jobstore.StateFollowOns:
		return j.FollowOns.Contains(s)
	}
	return false
}

// derive rebuilds the counters the store does not keep, after loading
// every live job: which jobs reached which, what each phase waits for,
// which jobs are ready. It returns jobs whose phase had settled, which the
// caller finishes (a crash cannot leave any, but the repair is cheap).
func (g *graph) derive() (settled []*ljob) {
	for _, p := range g.jobs {
		var phase jobstore.IDList
		switch p.State {
		case jobstore.StateChildren:
			phase = p.Children
		case jobstore.StateFollowOns:
			phase = p.FollowOns
		default:
			continue
		}
		for id := range phase.All() {
			s := g.jobs[id]
			if s == nil {
				continue
			}
			s.reached++
			switch s.State {
			case jobstore.StateFailed, jobstore.StateSkipped, jobstore.StateCancelled:
				p.failedSucc = true
			default:
				p.pending++
			}
		}
	}
	for _, j := range g.jobs {
		switch j.State {
		case jobstore.StatePending:
			if int(j.reached) == len(j.Preds) {
				g.makeReady(j)
			}
		case jobstore.StateChildren, jobstore.StateFollowOns:
			if j.pending == 0 {
				settled = append(settled, j)
			}
		case jobstore.StateSkipped:
			g.skipped++
		case jobstore.StateFailed:
			if j.LastError != "" {
				g.failedOwn = append(g.failedOwn, j.ID)
			}
		}
	}
	if r := g.jobs[g.root]; r != nil {
		g.rootDone = r.State == jobstore.StateDone
		g.rootFailed = r.State == jobstore.StateFailed
	}
	return settled
}

// why explains, for a person, where a job stands.
func (g *graph) why(id JobID) string {
	j := g.jobs[id]
	if j == nil {
		return "done (or never existed)"
	}
	switch j.State {
	case jobstore.StateChildren:
		return fmt.Sprintf("body done; waiting for %d child subtree(s)", j.pending)
	case jobstore.StateFollowOns:
		return fmt.Sprintf("children done; waiting for %d follow-on subtree(s)", j.pending)
	case jobstore.StateDone:
		return "done"
	case jobstore.StateFailed:
		if j.LastError == "" {
			return "failed: a successor failed"
		}
		return "failed: " + j.LastError
	case jobstore.StateSkipped:
		return fmt.Sprintf("will not run: predecessor %s failed", j.Cause)
	case jobstore.StateCancelled:
		return "cancelled"
	}
	switch j.where {
	case inReady:
		return "ready; waiting for room in the batch system (Config.MaxIssued)"
	case inBackoff:
		return fmt.Sprintf("in retry backoff until %s after %d failed attempt(s)", time.Unix(0, j.NotBefore).Format(time.RFC3339), j.Tries)
	case isIssued:
		return "issued to the batch system"
	}
	var waiting []string
	for _, p := range j.Preds {
		if pj := g.jobs[p]; pj != nil && !pj.hasReached(id) {
			waiting = append(waiting, pj.DisplayName())
		}
	}
	return fmt.Sprintf("waiting for %d of %d predecessor(s): %v", len(waiting), len(j.Preds), waiting)
}

type backoffHeap []*ljob

func (h backoffHeap) Len() int           { return len(h) }
func (h backoffHeap) Less(i, k int) bool { return h[i].NotBefore < h[k].NotBefore }
func (h backoffHeap) Swap(i, k int) {
	h[i], h[k] = h[k], h[i]
	h[i].heapIdx, h[k].heapIdx = i, k
}
func (h *backoffHeap) Push(x any) { j := x.(*ljob); j.heapIdx = len(*h); *h = append(*h, j) }
func (h *backoffHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return j
}
