package gaffer

import (
	"container/heap"
	"fmt"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/jobstore"
)

// ljob is the leader's copy of a live job: what it needs of the stored
// record, plus counters it derives from the records around it and never
// stores. A million of them may be live at once, so fields that most jobs
// never set live behind x, and requirements are shared between jobs.
type ljob struct {
	id    JobID
	kind  string
	preds []JobID
	succ  *successors // nil for a job with no successors, as most are
	req   *Requirements
	x     *jobExtra // nil while every field of it is zero
	bsID  batchsystem.ID
	seq   uint64 // issue number, unique for this leader

	tries   int32 // failed attempts charged
	retries int32 // -1: the leader's default
	reached int32 // predecessor edges that have reached this job
	pending int32 // successors of the current phase not yet settled
	heapIdx int32

	state         jobstore.State
	where         where
	inputPromises bool
	checkpoint    bool
	failedSucc    bool // a successor failed totally
}

// successors are a job's children and follow-ons.
type successors struct {
	children, followOns jobstore.IDList
}

// children and followOns read a job's successors; addChild and
// addFollowOn append to them.
func (j *ljob) children() jobstore.IDList {
	if j.succ == nil {
		return nil
	}
	return j.succ.children
}

func (j *ljob) followOns() jobstore.IDList {
	if j.succ == nil {
		return nil
	}
	return j.succ.followOns
}

func (j *ljob) addChild(id JobID) {
	if j.succ == nil {
		j.succ = &successors{}
	}
	j.succ.children = j.succ.children.Append(id)
}

func (j *ljob) addFollowOn(id JobID) {
	if j.succ == nil {
		j.succ = &successors{}
	}
	j.succ.followOns = j.succ.followOns.Append(id)
}

// jobExtra holds what few jobs have: a name, a failure, a backoff.
type jobExtra struct {
	name, lastError, logTail, backing string
	cause                             JobID
	backoff                           time.Duration
	notBefore                         int64
	// issueEpoch is the epoch of the leader that issued an adopted job,
	// whose result file carries that epoch; 0 means this leader's.
	issueEpoch uint64
}

var noExtra jobExtra

func (j *ljob) ext() *jobExtra {
	if j.x == nil {
		j.x = &jobExtra{}
	}
	return j.x
}

func (j *ljob) extra() *jobExtra {
	if j.x == nil {
		return &noExtra
	}
	return j.x
}

func (j *ljob) display() string {
	n := j.extra().name
	if n == "" {
		n = j.kind
	}
	return fmt.Sprintf("%s (%s)", n, j.id)
}

// record fills r with the job as the store keeps it. The leader reuses
// one record for every write of a transaction.
func (j *ljob) record(r *jobstore.Job) *jobstore.Job {
	x := j.extra()
	*r = jobstore.Job{
		ID: j.id, Kind: j.kind, Name: x.name, State: j.state,
		Preds: j.preds, Children: j.children(), FollowOns: j.followOns(),
		Requirements: *j.req, Checkpoint: j.checkpoint,
		Tries: int(j.tries), Retries: int(j.retries), Backoff: x.backoff, NotBefore: x.notBefore,
		InputPromises: j.inputPromises, LastError: x.lastError, LogTail: x.logTail, Cause: x.cause,
		Backing: x.backing,
	}
	return r
}

// clearFailure forgets the last failure once the job succeeds.
func (j *ljob) clearFailure() {
	if j.x != nil {
		j.x.lastError, j.x.logTail, j.x.notBefore, j.x.backing, j.x.issueEpoch = "", "", 0, "", 0
		if *j.x == noExtra {
			j.x = nil
		}
	}
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
	kinds map[string]string        // interned job type names
	reqs  map[reqKey]*Requirements // shared requirements

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
	maxBackoff time.Duration
	now        func() time.Time
}

func newGraph(retryCount int, backoff time.Duration, factor float64) *graph {
	return &graph{
		jobs: map[JobID]*ljob{}, kinds: map[string]string{}, reqs: map[reqKey]*Requirements{}, dirty: map[JobID]*ljob{},
		retryCount: retryCount, backoff0: backoff, factor: factor, maxBackoff: time.Hour, now: time.Now,
	}
}

func (g *graph) intern(s string) string {
	if k, ok := g.kinds[s]; ok {
		return k
	}
	g.kinds[s] = s
	return s
}

// reqKey is Requirements without its slice, for sharing.
type reqKey struct {
	cores       float64
	memory      int64
	disk        int64
	preemptible bool
	walltime    time.Duration
}

// shareReq returns a copy of r shared through m with every equal one.
// Requirements with accelerators are rare and not shared.
func shareReq(m map[reqKey]*Requirements, r Requirements) *Requirements {
	if len(r.Accelerators) > 0 {
		return &r
	}
	k := reqKey{r.Cores, r.Memory, r.Disk, r.Preemptible, r.Walltime}
	if p, ok := m[k]; ok {
		return p
	}
	p := &r
	m[k] = p
	return p
}

func (g *graph) shareReq(r Requirements) *Requirements { return shareReq(g.reqs, r) }

// fromRecord makes the leader's copy of a stored job.
func (g *graph) fromRecord(r *jobstore.Job) *ljob {
	j := &ljob{
		id: r.ID, kind: g.intern(r.Kind), preds: r.Preds,
		req: g.shareReq(r.Requirements), tries: int32(r.Tries), retries: int32(r.Retries),
		state: r.State, inputPromises: r.InputPromises, checkpoint: r.Checkpoint,
	}
	if len(r.Children) > 0 || len(r.FollowOns) > 0 {
		j.succ = &successors{children: r.Children, followOns: r.FollowOns}
	}
	x := jobExtra{name: r.Name, lastError: r.LastError, logTail: r.LogTail, backing: r.Backing,
		cause: r.Cause, backoff: r.Backoff, notBefore: r.NotBefore}
	if x != noExtra {
		j.x = &x
	}
	return j
}

func (g *graph) touch(j *ljob) { g.dirty[j.id] = j }

// makeReady queues a job whose predecessors have all reached it.
func (g *graph) makeReady(j *ljob) {
	if j.where != nowhere {
		return
	}
	if j.extra().notBefore > g.now().UnixNano() {
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
		if j.where == inReady && j.state == jobstore.StatePending {
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
		if nb := j.extra().notBefore; nb > now {
			return time.Duration(nb - now)
		}
		heap.Pop(&g.backoff)
		j.where = nowhere
		if j.state == jobstore.StatePending {
			j.where = inReady
			g.ready = append(g.ready, j)
		}
	}
	return 0
}

// bodyDone moves a job whose body succeeded on to its successors.
func (g *graph) bodyDone(j *ljob) {
	j.clearFailure()
	g.touch(j)
	switch {
	case j.children().Len() > 0:
		j.state = jobstore.StateChildren
		g.reach(j, j.children())
	case j.followOns().Len() > 0:
		j.state = jobstore.StateFollowOns
		g.reach(j, j.followOns())
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
		switch s.state {
		case jobstore.StateFailed, jobstore.StateSkipped, jobstore.StateCancelled:
			p.failedSucc = true
			continue
		}
		p.pending++
		if s.state == jobstore.StatePending && int(s.reached) == len(s.preds) {
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
	case p.state == jobstore.StateChildren && p.followOns().Len() > 0:
		p.state = jobstore.StateFollowOns
		g.touch(p)
		g.reach(p, p.followOns())
	default:
		g.subtreeDone(p)
	}
}

// subtreeDone removes a job whose subtree finished and tells its
// predecessors. The root is kept, marked done.
func (g *graph) subtreeDone(j *ljob) {
	j.state = jobstore.StateDone
	if j.id == g.root {
		g.touch(j)
		g.rootDone = true
		return
	}
	delete(g.jobs, j.id)
	delete(g.dirty, j.id)
	g.deleted = append(g.deleted, j.id)
	g.settlePreds(j, false)
}

func (g *graph) settlePreds(j *ljob, failed bool) {
	for _, pid := range j.preds {
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
	j.tries++
	x := j.ext()
	// The attempt is over: forget where it ran.
	x.lastError, x.logTail, x.backing, x.issueEpoch = msg, logTail, "", 0
	g.touch(j)
	retries := int(j.retries)
	if retries < 0 {
		retries = g.retryCount
	}
	if permanent || int(j.tries) > retries {
		g.failTotally(j, msg)
		return
	}
	switch {
	case x.backoff == 0:
		x.backoff = g.backoff0
	case float64(x.backoff)*g.factor >= float64(g.maxBackoff):
		// Without a cap, 2 s × 3^k passes a day at k = 10 and overflows
		// time.Duration at k = 21.
		x.backoff = g.maxBackoff
	default:
		x.backoff = time.Duration(float64(x.backoff) * g.factor)
	}
	x.backoff = min(x.backoff, g.maxBackoff)
	x.notBefore = g.now().Add(x.backoff).UnixNano()
	g.makeReady(j)
}

// failTotally marks j failed (msg "" means: because a successor failed),
// skips the successors it never reached, and tells its predecessors.
func (g *graph) failTotally(j *ljob, msg string) {
	was := j.state
	j.state = jobstore.StateFailed
	if msg != "" {
		j.ext().lastError = msg
		g.failedOwn = append(g.failedOwn, j.id)
	}
	g.touch(j)
	if was == jobstore.StatePending {
		for id := range j.children().All() {
			g.skip(id, j.id)
		}
	}
	if was == jobstore.StatePending || was == jobstore.StateChildren {
		for id := range j.followOns().All() {
			g.skip(id, j.id)
		}
	}
	if j.id == g.root {
		g.rootFailed = true
		return
	}
	g.settlePreds(j, true)
}

// skip marks a job that will never run because cause failed, with its
// own successors, and settles it for the predecessors that reached it.
func (g *graph) skip(id, cause JobID) {
	s := g.jobs[id]
	if s == nil || s.state != jobstore.StatePending || s.where == isIssued {
		return
	}
	s.state, s.ext().cause = jobstore.StateSkipped, cause
	g.skipped++
	g.touch(s)
	for _, qid := range s.preds {
		q := g.jobs[qid]
		if q != nil && q.hasReached(id) {
			q.failedSucc = true
			q.pending--
			if q.pending == 0 {
				g.phaseDone(q)
			}
		}
	}
	for c := range s.children().All() {
		g.skip(c, cause)
	}
	for f := range s.followOns().All() {
		g.skip(f, cause)
	}
}

func (j *ljob) hasReached(s JobID) bool {
	switch j.state {
	case jobstore.StateChildren:
		return j.children().Contains(s)
	case jobstore.StateFollowOns:
		return j.followOns().Contains(s)
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
		switch p.state {
		case jobstore.StateChildren:
			phase = p.children()
		case jobstore.StateFollowOns:
			phase = p.followOns()
		default:
			continue
		}
		for id := range phase.All() {
			s := g.jobs[id]
			if s == nil {
				continue
			}
			s.reached++
			switch s.state {
			case jobstore.StateFailed, jobstore.StateSkipped, jobstore.StateCancelled:
				p.failedSucc = true
			default:
				p.pending++
			}
		}
	}
	for _, j := range g.jobs {
		switch j.state {
		case jobstore.StatePending:
			if int(j.reached) == len(j.preds) {
				g.makeReady(j)
			}
		case jobstore.StateChildren, jobstore.StateFollowOns:
			if j.pending == 0 {
				settled = append(settled, j)
			}
		case jobstore.StateSkipped:
			g.skipped++
		case jobstore.StateFailed:
			if j.extra().lastError != "" {
				g.failedOwn = append(g.failedOwn, j.id)
			}
		}
	}
	if r := g.jobs[g.root]; r != nil {
		g.rootDone = r.state == jobstore.StateDone
		g.rootFailed = r.state == jobstore.StateFailed
	}
	return settled
}

// why explains, for a person, where a job stands.
func (g *graph) why(id JobID) string {
	j := g.jobs[id]
	if j == nil {
		return "done (or never existed)"
	}
	switch j.state {
	case jobstore.StateChildren:
		return fmt.Sprintf("body done; waiting for %d child subtree(s)", j.pending)
	case jobstore.StateFollowOns:
		return fmt.Sprintf("children done; waiting for %d follow-on subtree(s)", j.pending)
	case jobstore.StateDone:
		return "done"
	case jobstore.StateFailed:
		if j.extra().lastError == "" {
			return "failed: a successor failed"
		}
		return "failed: " + j.extra().lastError
	case jobstore.StateSkipped:
		return fmt.Sprintf("will not run: predecessor %s failed", j.extra().cause)
	case jobstore.StateCancelled:
		return "cancelled"
	}
	switch j.where {
	case inReady:
		return "ready; waiting for room in the batch system (Config.MaxIssued)"
	case inBackoff:
		return fmt.Sprintf("in retry backoff until %s after %d failed attempt(s)", time.Unix(0, j.extra().notBefore).Format(time.RFC3339), j.tries)
	case isIssued:
		return "issued to the batch system"
	}
	var waiting []string
	for _, p := range j.preds {
		if pj := g.jobs[p]; pj != nil && !pj.hasReached(id) {
			waiting = append(waiting, pj.display())
		}
	}
	return fmt.Sprintf("waiting for %d of %d predecessor(s): %v", len(waiting), len(j.preds), waiting)
}

type backoffHeap []*ljob

func (h backoffHeap) Len() int           { return len(h) }
func (h backoffHeap) Less(i, k int) bool { return h[i].extra().notBefore < h[k].extra().notBefore }
func (h backoffHeap) Swap(i, k int) {
	h[i], h[k] = h[k], h[i]
	h[i].heapIdx, h[k].heapIdx = int32(i), int32(k)
}
func (h *backoffHeap) Push(x any) { j := x.(*ljob); j.heapIdx = int32(len(*h)); *h = append(*h, j) }
func (h *backoffHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return j
}
