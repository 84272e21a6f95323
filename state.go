package gaffer

import (
	"container/heap"
	"fmt"
	"slices"
	"strings"
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
	cancelledSucc bool // a successor was cancelled
}

// successors are a job's children, follow-ons and services, with the
// counts a client keeps of its services.
type successors struct {
	children, followOns, services jobstore.IDList

	svcStarting int32 // services not yet started
	svcLive     int32 // service records not yet ended
	ending      bool  // the successors settled; waiting for the services to end
}

func (j *ljob) services() jobstore.IDList {
	if j.succ == nil {
		return nil
	}
	return j.succ.services
}

func (j *ljob) addService(id JobID) {
	if j.succ == nil {
		j.succ = &successors{}
	}
	j.succ.services = j.succ.services.Append(id)
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
	svc        *svcInfo // set on services
	// categories names the concurrency limits the job counts against,
	// joined by NULs (a string keeps jobExtra comparable and is shared).
	categories string
}

func (j *ljob) categories() []string {
	if j.x == nil || j.x.categories == "" {
		return nil
	}
	return strings.Split(j.x.categories, "\x00")
}

// svcInfo is what the leader knows of a service job.
type svcInfo struct {
	client, parent JobID
	phase          svcPhase
	slot           bool // holds a place under the service limit
}

type svcPhase uint8

const (
	svcWaiting  svcPhase = iota // for its parent service to start
	svcQueued                   // for room under the service limit
	svcStarting                 // ready, in backoff or issued; not yet started
	svcRunning                  // started; its value is stored
	svcStopping                 // asked to stop
)

var svcPhaseNames = [...]string{"waiting for its parent service", "queued: service limit reached", "starting", "running", "stopping"}

func (j *ljob) svc() *svcInfo {
	if j.x == nil {
		return nil
	}
	return j.x.svc
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
		Backing: x.backing, Services: j.services(), Categories: j.categories(),
	}
	if x.svc != nil {
		r.ServiceOf, r.ParentService = x.svc.client, x.svc.parent
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
	inLimit         // held back by a category's concurrency limit
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

	ready   ljobQueue
	backoff backoffHeap

	// Writes for the open transaction.
	dirty   map[JobID]*ljob
	deleted []JobID

	rootDone, rootFailed, rootCancelled bool
	failedOwn                           []JobID // jobs that failed by their own error
	cancelled                           []JobID // jobs a user cancelled
	skipped                             int

	// Services: the queues of those waiting for room under the limits
	// (ordinary, preemptible), how many hold a place, and the limits
	// (0: none).
	svcQueue  [2]ljobQueue
	svcSlots  [2]int
	svcMax    [2]int
	toStop    []*ljob // services to ask to stop; the leader does it
	toKill    []*ljob // issued jobs to kill (cancelled); the leader does it
	services  int     // service jobs pending (not ended, failed or cancelled)
	restarted int     // checkpoint restarts

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
	if len(r.Children) > 0 || len(r.FollowOns) > 0 || len(r.Services) > 0 {
		j.succ = &successors{children: r.Children, followOns: r.FollowOns, services: r.Services}
	}
	x := jobExtra{name: r.Name, lastError: r.LastError, logTail: r.LogTail, backing: r.Backing,
		cause: r.Cause, backoff: r.Backoff, notBefore: r.NotBefore}
	if r.ServiceOf != 0 {
		x.svc = &svcInfo{client: r.ServiceOf, parent: r.ParentService}
		if r.State == jobstore.StatePending {
			g.services++
		}
	}
	if len(r.Categories) > 0 {
		x.categories = g.intern(strings.Join(r.Categories, "\x00"))
	}
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
	g.ready.push(j)
}

// popReady takes the next ready job, skipping entries that went stale.
func (g *graph) popReady() *ljob {
	j := g.ready.pop(func(j *ljob) bool { return j.where == inReady && j.state == jobstore.StatePending })
	if j != nil {
		j.where = nowhere
	}
	return j
}

func (g *graph) readyLen() int { return g.ready.len() }

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
			g.ready.push(j)
		}
	}
	return 0
}

// bodyDone moves a job whose body succeeded on to its services, if it
// has any, and otherwise to its successors.
func (g *graph) bodyDone(j *ljob) {
	j.clearFailure()
	g.touch(j)
	if j.services().Len() > 0 {
		g.startServices(j)
		return
	}
	g.runSuccessors(j)
}

// runSuccessors starts a job's first phase of successors.
func (g *graph) runSuccessors(j *ljob) {
	switch {
	case j.children().Len() > 0:
		j.state = jobstore.StateChildren
		g.touch(j)
		g.reach(j, j.children())
	case j.followOns().Len() > 0:
		j.state = jobstore.StateFollowOns
		g.touch(j)
		g.reach(j, j.followOns())
	default:
		g.settle(j)
	}
}

// reach tells each job of p's current phase that p has reached it.
func (g *graph) reach(p *ljob, phase jobstore.IDList) {
	p.pending = 0
	for id := range phase.All() {
		s := g.jobs[id]
		if s == nil {
			continue // done already (a resumed phase, a restarted client)
		}
		s.reached++
		switch s.state {
		case jobstore.StateFailed, jobstore.StateSkipped:
			p.failedSucc = true
			continue
		case jobstore.StateCancelled:
			p.cancelledSucc = true
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
	if p.state == jobstore.StateChildren && p.followOns().Len() > 0 && !p.failedSucc && !p.cancelledSucc {
		p.state = jobstore.StateFollowOns
		g.touch(p)
		g.reach(p, p.followOns())
		return
	}
	g.settle(p)
}

// settle ends a job whose successors have all settled: once its services
// have ended, it is done, failed (a successor or service failed) or
// cancelled.
func (g *graph) settle(p *ljob) {
	if p.succ != nil && p.succ.svcLive > 0 {
		if !p.succ.ending {
			p.succ.ending = true
			g.stopServices(p)
		}
		return
	}
	switch {
	case p.failedSucc:
		g.failTotally(p, "")
	case p.cancelledSucc:
		g.cancelTotally(p)
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
	g.remove(j)
	g.settlePreds(j, settledOK)
}

// remove forgets a job: it is deleted from the store at the commit, and
// any queue entry of it goes stale.
func (g *graph) remove(j *ljob) {
	if j.state == jobstore.StatePending {
		if j.svc() != nil {
			g.services--
		}
		j.state = jobstore.StateDone // stale in the ready queue and backoff heap
	}
	if j.state == jobstore.StateSkipped {
		g.skipped--
	}
	delete(g.jobs, j.id)
	delete(g.dirty, j.id)
	g.deleted = append(g.deleted, j.id)
}

type settledHow uint8

const (
	settledOK settledHow = iota
	settledFailed
	settledCancelled
)

func (g *graph) settlePreds(j *ljob, how settledHow) {
	for _, pid := range j.preds {
		p := g.jobs[pid]
		if p == nil {
			continue
		}
		switch how {
		case settledFailed:
			p.failedSucc = true
		case settledCancelled:
			p.cancelledSucc = true
		}
		p.pending--
		if p.pending == 0 {
			g.phaseDone(p)
		}
	}
}

// triesLeft reports whether j may be charged one more failed attempt.
func (g *graph) triesLeft(j *ljob) bool {
	retries := int(j.retries)
	if retries < 0 {
		retries = g.retryCount
	}
	return int(j.tries) < retries
}

// attemptFailed charges a failed attempt; the job is retried after its
// backoff if it has tries left, and fails totally otherwise.
func (g *graph) attemptFailed(j *ljob, msg, logTail string, permanent bool) {
	x := j.ext()
	// The attempt is over: forget where it ran.
	x.lastError, x.logTail, x.backing, x.issueEpoch = msg, logTail, "", 0
	g.touch(j)
	if permanent || !g.triesLeft(j) {
		j.tries++
		g.failTotally(j, msg)
		return
	}
	j.tries++
	g.chargeBackoff(j)
	g.makeReady(j)
}

// chargeBackoff sets the wait before j's next try.
func (g *graph) chargeBackoff(j *ljob) {
	x := j.ext()
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
}

// failTotally marks j failed (msg "" means: because a successor or
// service failed), skips the successors it never reached, and tells its
// predecessors. A checkpoint whose subtree failed and that has tries left
// runs again instead.
func (g *graph) failTotally(j *ljob, msg string) {
	if msg == "" && j.checkpoint && !j.cancelledSucc && g.triesLeft(j) {
		g.restartCheckpoint(j)
		return
	}
	if j.svc() != nil {
		g.serviceFailed(j, msg)
		return
	}
	was := j.state
	j.state = jobstore.StateFailed
	if msg != "" {
		j.ext().lastError = msg
		g.failedOwn = append(g.failedOwn, j.id)
	}
	g.touch(j)
	g.skipUnreached(j, was)
	if j.id == g.root {
		g.rootFailed = true
		return
	}
	g.settlePreds(j, settledFailed)
}

// skipUnreached skips the successors of j, which was in state was, that
// it never reached.
func (g *graph) skipUnreached(j *ljob, was jobstore.State) {
	if was == jobstore.StatePending || was == jobstore.StateServices {
		for id := range j.children().All() {
			g.skip(id, j.id)
		}
	}
	if was == jobstore.StatePending || was == jobstore.StateServices || was == jobstore.StateChildren {
		for id := range j.followOns().All() {
			g.skip(id, j.id)
		}
	}
}

// cancelTotally marks j cancelled because a successor was, once its
// other successors settled; it is the cancelled counterpart of
// failTotally.
func (g *graph) cancelTotally(j *ljob) {
	was := j.state
	j.state = jobstore.StateCancelled
	g.touch(j)
	g.skipUnreached(j, was)
	if j.id == g.root {
		g.rootCancelled = true
		return
	}
	g.settlePreds(j, settledCancelled)
}

// restartCheckpoint removes a checkpoint's subtree, whose failure has
// settled, and runs the checkpoint again, charging it a try (Toil's
// restartCheckpoint). Nothing of the subtree runs by then: a job settles
// only after its successors and services have.
func (g *graph) restartCheckpoint(j *ljob) {
	var firstErr string
	removed := map[JobID]bool{}
	g.walkSubtree(j, func(s *ljob) {
		removed[s.id] = true
		if firstErr == "" && s.extra().lastError != "" && s.state == jobstore.StateFailed {
			firstErr = s.display() + ": " + s.extra().lastError
		}
		if s.where == isIssued {
			g.toKill = append(g.toKill, s) // cannot happen, but leave nothing running
		}
		g.remove(s)
	})
	// The failures are gone with the subtree: a leader resumed from the
	// store would not know them either.
	g.failedOwn = slices.DeleteFunc(g.failedOwn, func(id JobID) bool { return removed[id] })
	j.succ = nil
	j.state = jobstore.StatePending
	j.failedSucc, j.pending = false, 0
	j.tries++
	g.restarted++
	x := j.ext()
	x.lastError = "checkpoint restarted: its subtree failed"
	if firstErr != "" {
		x.lastError += " (" + firstErr + ")"
	}
	g.touch(j)
	g.chargeBackoff(j)
	g.makeReady(j)
}

// walkSubtree calls fn on every live job below j (successors and
// services, transitively), each once, children before their parents are
// forgotten; j itself is not visited.
func (g *graph) walkSubtree(j *ljob, fn func(*ljob)) {
	seen := map[JobID]bool{j.id: true}
	stack := []*ljob{j}
	var order []*ljob
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, l := range [3]jobstore.IDList{p.children(), p.followOns(), p.services()} {
			for id := range l.All() {
				if s := g.jobs[id]; s != nil && !seen[id] {
					seen[id] = true
					order = append(order, s)
					stack = append(stack, s)
				}
			}
		}
	}
	for _, s := range order {
		fn(s)
	}
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

// cancel cancels job id with its whole subtree, at once: issued jobs of
// it are to be killed (toKill), and every job of it is recorded as
// cancelled. Predecessors that reached it settle it as cancelled; they
// end cancelled once their other successors have settled, and so on up
// to the root. Cancelling a service cancels its client. It reports
// whether there was anything to cancel.
func (g *graph) cancel(id JobID) bool {
	j := g.jobs[id]
	if sv := j.svcOf(); sv != nil {
		j = g.jobs[sv.client]
	}
	if j == nil || !j.live() {
		return false
	}
	g.cancelled = append(g.cancelled, j.id)
	var sub []*ljob
	g.walkSubtree(j, func(s *ljob) {
		if s.live() {
			sub = append(sub, s)
		}
	})
	sub = append(sub, j)
	for _, s := range sub {
		if s.where == isIssued {
			g.toKill = append(g.toKill, s)
		}
		if sv := s.svc(); sv != nil {
			g.releaseSlot(s)
			if s.state == jobstore.StatePending {
				g.services--
			}
		}
		s.state = jobstore.StateCancelled
		g.touch(s)
	}
	// Jobs outside the subtree that reached a job of it (the root's
	// predecessors, and those of joins) settle it as cancelled.
	for _, s := range sub {
		for _, qid := range s.preds {
			q := g.jobs[qid]
			if q != nil && q.state != jobstore.StateCancelled && q.hasReached(s.id) {
				q.cancelledSucc = true
				q.pending--
				if q.pending == 0 {
					g.phaseDone(q)
				}
			}
		}
	}
	if j.id == g.root {
		g.rootCancelled = true
	}
	return true
}

func (j *ljob) svcOf() *svcInfo {
	if j == nil {
		return nil
	}
	return j.svc()
}

// live reports whether j has not ended: pending, or waiting for its
// successors or services.
func (j *ljob) live() bool {
	switch j.state {
	case jobstore.StatePending, jobstore.StateServices, jobstore.StateChildren, jobstore.StateFollowOns:
		return true
	}
	return false
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
			case jobstore.StateFailed, jobstore.StateSkipped:
				p.failedSucc = true
			case jobstore.StateCancelled:
				p.cancelledSucc = true
			default:
				p.pending++
			}
		}
	}
	for _, j := range g.jobs {
		switch j.state {
		case jobstore.StatePending:
			if j.svc() == nil && int(j.reached) == len(j.preds) {
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
		g.rootCancelled = r.state == jobstore.StateCancelled
	}
	return settled
}

// why explains, for a person, where a job stands.
func (g *graph) why(id JobID) string {
	j := g.jobs[id]
	if j == nil {
		return "done (or never existed)"
	}
	if sv := j.svc(); sv != nil && j.state == jobstore.StatePending {
		client := sv.client.String()
		if c := g.jobs[sv.client]; c != nil {
			client = c.display()
		}
		switch {
		case sv.phase == svcWaiting && sv.parent != 0:
			return fmt.Sprintf("service of %s, waiting for its parent service %s to start", client, sv.parent)
		case sv.phase == svcWaiting:
			return fmt.Sprintf("service of %s, waiting for its client's body to finish", client)
		case sv.phase == svcQueued:
			return fmt.Sprintf("service of %s, queued: the service limit (%d) is reached (Config.MaxServices or MaxPreemptibleServices)", client, g.svcMax[svcClass(j)])
		case sv.phase == svcStarting && j.where == isIssued:
			return fmt.Sprintf("service of %s, issued; not yet started", client)
		case sv.phase == svcRunning:
			return fmt.Sprintf("service of %s, running", client)
		case sv.phase == svcStopping:
			return fmt.Sprintf("service of %s, asked to stop", client)
		}
	}
	switch j.state {
	case jobstore.StateServices:
		if j.succ != nil && j.succ.ending {
			return fmt.Sprintf("ending: waiting for %d service(s) to stop", j.succ.svcLive)
		}
		return fmt.Sprintf("body done; waiting for %d of its services to start", j.succ.svcStarting)
	case jobstore.StateChildren:
		if j.succ != nil && j.succ.ending {
			return fmt.Sprintf("successors done; waiting for %d service(s) to stop", j.succ.svcLive)
		}
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
			if pj.state == jobstore.StateServices {
				waiting = append(waiting, pj.display()+" (its services have not all started)")
			} else {
				waiting = append(waiting, pj.display())
			}
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
