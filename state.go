package gaffer

import (
	"container/heap"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/gafferhq/gaffer/jobstore"
)

// graph is the leader's in-memory state of the workflow, and its methods
// are the scheduling decisions: every transition of a job (ingested,
// issued, ended with an outcome, cancelled, a service started or
// stopped, rescued) is a method here. A transition changes the graph's
// memory and writes down in g.plan what must happen outside it; it does
// no I/O, so the tests drive the very methods the leader drives, with no
// store or batch system (docs/architecture.md).
type graph struct {
	jobs    jobIndex
	root    JobID
	epoch   uint64                   // of this leader; it names the files of its attempts
	nextID  JobID                    // the store's next free job ID
	nextSeq uint64                   // issue numbers
	kinds   map[string]string        // interned job type names
	perKind map[string]int           // live records by job type (Meta.Kinds)
	reqs    map[reqKey]*Requirements // shared requirements

	ready   ljobQueue
	backoff backoffHeap
	cats    *catLimits

	// issued is the one index of issued attempts, by batch system and
	// its ID. track and untrack are the only writers, of it and of the
	// job's where, bsID and seq.
	issued     map[issueKey]issuedAttempt
	issuedSvcs int              // services among issued
	missing    map[issueKey]int // rescue checks each issued job was missing for
	routes     routeTable       // the batch systems jobs are routed to (state_route.go)

	plan  *plan
	spare *plan // an applied plan, for take to reuse (recycle)
	// notes: record issuedNote and doneNote in plans, for the scaler's
	// workload and Config.Metrics; the leader turns it off when neither
	// reads them.
	notes bool

	// outcome is the workflow's: StatusRunning until the root's subtree
	// settles.
	outcome   jobstore.Status
	failedOwn []JobID // jobs that failed by their own error
	cancelled []JobID // jobs a user cancelled
	// Counters of job states, changed only by count (through add,
	// setState and remove).
	skipped  int // jobs skipped
	services int // service jobs pending (not ended, failed or cancelled)

	// Services: the queues of those waiting for room under the limits
	// (ordinary, preemptible), how many hold a place, and the limits
	// (0: none).
	svcQueue  [2]ljobQueue
	svcSlots  [2]int
	svcMax    [2]int
	restarted int // checkpoint restarts

	// Who still reads which results (state_results.go): held and more
	// count the holds on a job's result, reads lists what a job holds.
	held  []uint64
	more  map[JobID]int32
	reads map[JobID]jobstore.IDList

	retryCount    int
	defaultMemory int64 // Config.DefaultRequirements.Memory, for MoreMemoryOnRetry
	backoff0      time.Duration
	factor        float64
	maxBackoff    time.Duration
	now           func() time.Time
}

func newGraph(retryCount int, backoff time.Duration, factor float64) *graph {
	return &graph{
		kinds: map[string]string{}, perKind: map[string]int{}, reqs: map[reqKey]*Requirements{},
		issued: map[issueKey]issuedAttempt{}, missing: map[issueKey]int{}, plan: newPlan(), routes: newRouteTable(),
		outcome: jobstore.StatusRunning, nextID: 1, notes: true,
		retryCount: retryCount, backoff0: backoff, factor: factor, maxBackoff: time.Hour, now: time.Now,
	}
}

// finished reports whether the workflow has ended, one way or another.
func (g *graph) finished() bool { return g.outcome != jobstore.StatusRunning }

// end records the workflow's outcome, once.
func (g *graph) end(s jobstore.Status) {
	if !g.finished() {
		g.outcome, g.plan.ended = s, true
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

// fromRecord makes the leader's copy of a stored job. It reports whether
// the record's backing ID was readable (an unreadable one is dropped: the
// job is issued again).
func (g *graph) fromRecord(r *jobstore.Job) (j *ljob, backingOK bool) {
	j = &ljob{
		id: r.ID, kind: g.intern(r.Kind), preds: r.Preds,
		req: g.shareReq(r.Requirements), tries: int32(r.Tries), retries: int32(r.Retries),
		state: r.State, inputPromises: r.InputPromises, checkpoint: r.Checkpoint, forwarded: r.Forwarded,
	}
	if len(r.Children) > 0 || len(r.FollowOns) > 0 || len(r.Services) > 0 {
		j.succ = &successors{children: r.Children, followOns: r.FollowOns, services: r.Services}
	}
	backing, backingOK := parseBackingRef(r.Backing)
	x := jobExtra{name: r.Name, lastError: r.LastError, logTail: r.LogTail, backing: backing,
		cause: r.Cause, backoff: r.Backoff, notBefore: r.NotBefore, deaths: int32(r.LeaderDeaths),
		reqFrom: r.RequirementsFrom, memFactor: r.MemoryFactor, memCeiling: r.MemoryCeiling}
	if r.ServiceOf != 0 {
		x.svc = &svcInfo{client: r.ServiceOf, parent: r.ParentService}
	}
	if len(r.Categories) > 0 {
		x.categories = g.intern(strings.Join(r.Categories, "\x00"))
	}
	if r.Target != "" {
		x.target = g.intern(r.Target)
	}
	if r.BatchSystem != "" {
		j.route = g.routes.load(r)
	}
	if x != noExtra {
		j.x = &x
	}
	return j, backingOK
}

// add makes j live in the graph.
func (g *graph) add(j *ljob) {
	g.jobs.put(j)
	g.count(j, 1)
	g.perKind[j.kind]++
	g.plan.kinds = true
	if j.state == jobstore.StateFailed && j.extra().lastError != "" {
		g.failedOwn = append(g.failedOwn, j.id)
	}
}

// countsMatch checks the records loaded against the store's count of
// them by type (nil: a store from before the count): a record lost to a
// damaged page would otherwise pass for a job that is done.
func (g *graph) countsMatch(want map[string]int) error {
	if want == nil || maps.Equal(want, g.perKind) {
		return nil
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if g.perKind[k] != want[k] {
			return fmt.Errorf("the store counts %d records of type %q and holds %d", want[k], k, g.perKind[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(g.perKind)) {
		if _, ok := want[k]; !ok {
			return fmt.Errorf("the store holds %d records of type %q and counts none", g.perKind[k], k)
		}
	}
	return nil
}

// count adds d to the counters j's state belongs to.
func (g *graph) count(j *ljob, d int) {
	switch {
	case j.state == jobstore.StatePending && j.svc() != nil:
		g.services += d
	case j.state == jobstore.StateSkipped:
		g.skipped += d
	}
}

// setState moves j to state s and marks its record for writing.
func (g *graph) setState(j *ljob, s jobstore.State) {
	g.count(j, -1)
	j.state = s
	g.count(j, 1)
	g.touch(j)
}

func (g *graph) touch(j *ljob) { g.plan.dirty[j.id] = j }

// remove forgets a job: it is deleted from the store at the commit, and
// any queue entry of it goes stale.
func (g *graph) remove(j *ljob) {
	g.count(j, -1)
	if g.perKind[j.kind]--; g.perKind[j.kind] == 0 {
		delete(g.perKind, j.kind)
	}
	g.plan.kinds = true
	if j.state == jobstore.StatePending {
		j.state = jobstore.StateDone // stale in the ready queue and backoff heap
	}
	g.jobs.del(j.id)
	delete(g.plan.dirty, j.id)
	g.plan.deleted = append(g.plan.deleted, j.id)
	g.doneReading(j)
}

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
	j := g.ready.pop(&g.jobs, func(j *ljob) bool { return j.where == inReady && j.state == jobstore.StatePending })
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
		g.setState(j, jobstore.StateChildren)
		g.reach(j, j.children())
	case j.followOns().Len() > 0:
		g.setState(j, jobstore.StateFollowOns)
		g.reach(j, j.followOns())
	default:
		g.settle(j)
	}
}

// reach tells each job of p's current phase that p has reached it.
func (g *graph) reach(p *ljob, phase jobstore.IDList) {
	p.pending = 0
	for id := range phase.All() {
		s := g.jobs.get(id)
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
		case jobstore.StatePending, jobstore.StateServices, jobstore.StateChildren, jobstore.StateFollowOns, jobstore.StateDone:
			// Still to settle (a done job's record is gone, but the
			// root's).
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
		g.setState(p, jobstore.StateFollowOns)
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
	if j.id == g.root {
		g.setState(j, jobstore.StateDone)
		g.end(jobstore.StatusSucceeded)
		return
	}
	g.remove(j)
	j.state = jobstore.StateDone
	g.settlePreds(j, settledOK)
}

type settledHow uint8

const (
	settledOK settledHow = iota
	settledFailed
	settledCancelled
)

func (g *graph) settlePreds(j *ljob, how settledHow) {
	for _, pid := range j.preds {
		p := g.jobs.get(pid)
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
	x.lastError, x.logTail, x.backing = msg, logTail, backingRef{}
	g.touch(j)
	retry := !permanent && g.triesLeft(j)
	j.tries++
	if !retry {
		g.failTotally(j, msg)
		return
	}
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
	g.setState(j, jobstore.StateFailed)
	if msg != "" {
		j.ext().lastError = msg
		g.failedOwn = append(g.failedOwn, j.id)
	}
	g.skipUnreached(j, was)
	if j.id == g.root {
		g.end(jobstore.StatusFailed)
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
	g.setState(j, jobstore.StateCancelled)
	g.skipUnreached(j, was)
	if j.id == g.root {
		g.end(jobstore.StatusCancelled)
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
			g.killAttempt(s) // cannot happen, but leave nothing running
		}
		g.remove(s)
	})
	// The failures are gone with the subtree: a leader resumed from the
	// store would not know them either.
	g.failedOwn = slices.DeleteFunc(g.failedOwn, func(id JobID) bool { return removed[id] })
	j.succ = nil
	g.setState(j, jobstore.StatePending)
	j.failedSucc, j.pending = false, 0
	j.tries++
	g.restarted++
	x := j.ext()
	x.lastError = "checkpoint restarted: its subtree failed"
	if firstErr != "" {
		x.lastError += " (" + firstErr + ")"
	}
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
				if s := g.jobs.get(id); s != nil && !seen[id] {
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
	s := g.jobs.get(id)
	if s == nil || s.state != jobstore.StatePending || s.where == isIssued {
		return
	}
	g.setState(s, jobstore.StateSkipped)
	s.ext().cause = cause
	for _, qid := range s.preds {
		q := g.jobs.get(qid)
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

// derive rebuilds the counters the store does not keep, after loading
// every live job: which jobs reached which, what each phase waits for,
// which jobs are ready. It returns jobs whose phase had settled, which the
// caller finishes (a crash cannot leave any, but the repair is cheap).
func (g *graph) derive() (settled []*ljob) {
	for _, p := range g.jobs.all() {
		var phase jobstore.IDList
		switch p.state {
		case jobstore.StateChildren:
			phase = p.children()
		case jobstore.StateFollowOns:
			phase = p.followOns()
		case jobstore.StatePending, jobstore.StateServices, jobstore.StateDone, jobstore.StateFailed, jobstore.StateSkipped, jobstore.StateCancelled:
			continue // no phase of successors runs
		}
		for id := range phase.All() {
			s := g.jobs.get(id)
			if s == nil {
				continue
			}
			s.reached++
			switch s.state {
			case jobstore.StateFailed, jobstore.StateSkipped:
				p.failedSucc = true
			case jobstore.StateCancelled:
				p.cancelledSucc = true
			case jobstore.StatePending, jobstore.StateServices, jobstore.StateChildren, jobstore.StateFollowOns, jobstore.StateDone:
				p.pending++
			}
		}
	}
	for _, j := range g.jobs.all() {
		switch j.state {
		case jobstore.StatePending:
			if j.svc() == nil && int(j.reached) == len(j.preds) {
				g.makeReady(j)
			}
		case jobstore.StateChildren, jobstore.StateFollowOns:
			if j.pending == 0 {
				settled = append(settled, j)
			}
		case jobstore.StateServices, jobstore.StateDone, jobstore.StateFailed, jobstore.StateSkipped, jobstore.StateCancelled:
			// Nothing to derive: services restart (resumeServices);
			// the others have ended.
		}
	}
	if r := g.jobs.get(g.root); r != nil {
		switch r.state {
		case jobstore.StateDone:
			g.outcome = jobstore.StatusSucceeded
		case jobstore.StateFailed:
			g.outcome = jobstore.StatusFailed
		case jobstore.StateCancelled:
			g.outcome = jobstore.StatusCancelled
		case jobstore.StatePending, jobstore.StateServices, jobstore.StateChildren, jobstore.StateFollowOns, jobstore.StateSkipped:
			// Running.
		}
	}
	return settled
}

// reload rebuilds, once every live job of a stored workflow is loaded,
// what the store does not keep (derive). Services do not outlive their
// leader, so first the clients of services that were live go back to
// starting them (restart), or, if a service of theirs failed, drop the
// others (failed: those whose successors never ran). settled are jobs
// whose phase had settled (a crash cannot leave any, but the repair is
// cheap). The leader passes all three to resumed.
func (g *graph) reload() (settled, restart, failed []*ljob) {
	restart, failed = g.resumeServices()
	return g.derive(), restart, failed
}

// resumed finishes what reload found, for a workflow whose stored status
// is status. A whole-workflow cancel leaves the jobs' records as they
// were: the status is what says the workflow ended.
func (g *graph) resumed(settled, restart, failed []*ljob, status jobstore.Status) {
	for _, j := range settled {
		g.phaseDone(j)
	}
	for _, c := range failed {
		g.settle(c)
	}
	for _, c := range restart {
		if c.state == jobstore.StateServices {
			g.startServices(c)
		}
	}
	switch status {
	case jobstore.StatusSucceeded, jobstore.StatusFailed, jobstore.StatusCancelled:
		g.outcome = status
	case jobstore.StatusNew, jobstore.StatusRunning:
	}
}

// finishedJob reports whether job id existed and has finished for good:
// its record is gone.
func (g *graph) finishedJob(id JobID) bool { return id > 0 && id < g.nextID && g.jobs.get(id) == nil }

// issuedIDs lists the issued attempts by batch system and ID.
func (g *graph) issuedIDs() []issueKey {
	ids := make([]issueKey, 0, len(g.issued))
	for k := range g.issued {
		ids = append(ids, k)
	}
	return ids
}
