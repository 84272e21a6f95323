package gaffer

import (
	"github.com/gafferhq/gaffer/jobstore"
)

// The life of a client's services in the leader's graph (toil-brief 1.6
// and 3). The client's body has run; then:
//
//	startServices  client → StateServices; its top services are admitted
//	admitService   a service takes a place under the limit and is made
//	               ready, or waits in the limit's queue
//	serviceStarted its value is stored; its child services are admitted;
//	               when the last one starts the client runs its successors
//	settle         (state.go) the successors are done: stop the services
//	serviceEnded   a stopped service ended; the last one ends the client
//	serviceFailed  a service failed totally: the others are stopped and
//	               the client fails (or its checkpoint restarts)
//
// Unlike Toil, which hands services to a thread that polls flag files, all
// of it is done here, in the leader's single loop, at O(1) per service
// event (O(services of the client) when a service starts or fails).

// svcClass is the limit a service counts against: 0 ordinary, 1
// preemptible (Toil's --maxServiceJobs and --maxPreemptibleServiceJobs).
func svcClass(s *ljob) int {
	if s.req.Preemptible {
		return 1
	}
	return 0
}

// startServices starts the services of a client whose body has run; its
// successors wait until they have all started.
func (g *graph) startServices(c *ljob) {
	g.setState(c, jobstore.StateServices)
	live := int32(0)
	for id := range c.services().All() {
		s := g.jobs.get(id)
		if s == nil || s.state != jobstore.StatePending {
			continue
		}
		live++
		sv := s.svc()
		sv.phase = svcWaiting
		if sv.parent == 0 || g.jobs.get(sv.parent) == nil {
			g.admitService(s)
		}
	}
	c.succ.svcStarting, c.succ.svcLive, c.succ.ending = live, live, false
	if live == 0 {
		g.runSuccessors(c)
	}
}

// admitService makes s ready if the limit has room; it queues otherwise.
func (g *graph) admitService(s *ljob) {
	k := svcClass(s)
	sv := s.svc()
	if g.svcMax[k] > 0 && g.svcSlots[k] >= g.svcMax[k] {
		sv.phase = svcQueued
		g.svcQueue[k].push(s)
		return
	}
	g.svcSlots[k]++
	sv.slot, sv.phase = true, svcStarting
	g.makeReady(s)
}

// releaseSlot gives back s's place under the limit, if it held one, to
// the first service queued for one.
func (g *graph) releaseSlot(s *ljob) {
	sv := s.svc()
	if sv == nil || !sv.slot {
		return
	}
	sv.slot = false
	k := svcClass(s)
	g.svcSlots[k]--
	for g.svcMax[k] == 0 || g.svcSlots[k] < g.svcMax[k] {
		q := g.svcQueue[k].pop(&g.jobs, func(q *ljob) bool { return q.svc().phase == svcQueued && q.state == jobstore.StatePending })
		if q == nil {
			break
		}
		g.admitService(q)
	}
}

// serviceReport takes a service's start report: its value is stored
// (the promise its users read) and the service counts as started. Only
// the start of the attempt now issued counts; it reports whether it did.
func (g *graph) serviceReport(r startReport) bool {
	s := g.jobs.get(r.Job)
	if s == nil || s.svc() == nil || s.where != isIssued || s.seq != r.Seq || r.Epoch != g.epoch {
		return false
	}
	g.plan.results = append(g.plan.results, result{id: s.id, value: r.Value})
	g.serviceStarted(s)
	return true
}

// serviceStarted records that s started (its value is stored). Its child services are admitted; the client's successors run
// once every service has started.
func (g *graph) serviceStarted(s *ljob) {
	sv := s.svc()
	if sv.phase != svcStarting {
		return // stopping already, or a report of an old attempt
	}
	sv.phase = svcRunning
	c := g.jobs.get(sv.client)
	if c == nil || c.succ == nil {
		return
	}
	if c.succ.ending || c.failedSucc || c.state == jobstore.StateCancelled {
		g.stopService(s)
		return
	}
	for id := range c.services().All() {
		if cs := g.jobs.get(id); cs != nil && cs.svc().parent == s.id && cs.svc().phase == svcWaiting && cs.state == jobstore.StatePending {
			g.admitService(cs)
		}
	}
	c.succ.svcStarting--
	if c.succ.svcStarting == 0 && c.state == jobstore.StateServices {
		g.runSuccessors(c)
	}
}

// stopServices asks every live service of c to stop; those not yet
// issued are dropped.
func (g *graph) stopServices(c *ljob) {
	for id := range c.services().All() {
		if s := g.jobs.get(id); s != nil && s.state == jobstore.StatePending {
			g.stopService(s)
		}
	}
}

func (g *graph) stopService(s *ljob) {
	sv := s.svc()
	switch {
	case sv.phase == svcStopping:
	case s.where == isIssued:
		sv.phase = svcStopping
		g.plan.stop = append(g.plan.stop, g.attemptOf(s))
	default:
		// Never issued (waiting, queued, ready, in backoff): nothing to
		// stop. Its queue entries go stale.
		g.serviceEnded(s)
	}
}

// serviceEnded forgets a service that ended well (or never ran) and ends
// its client if it was the last.
func (g *graph) serviceEnded(s *ljob) {
	sv := s.svc()
	g.releaseSlot(s)
	s.where = nowhere
	g.remove(s)
	g.clientLosesService(sv.client)
}

func (g *graph) clientLosesService(id JobID) {
	c := g.jobs.get(id)
	if c == nil || c.succ == nil {
		return
	}
	c.succ.svcLive--
	if c.succ.svcLive == 0 && c.succ.ending {
		c.succ.ending = false
		g.settle(c)
	}
}

// serviceFailed records a service that failed totally: before it started
// with no tries left, or at any time after. Its client's other services
// are stopped and the client fails once they have ended and its
// successors (if it had reached them) have settled.
func (g *graph) serviceFailed(s *ljob, msg string) {
	sv := s.svc()
	g.releaseSlot(s)
	g.setState(s, jobstore.StateFailed)
	if msg == "" {
		msg = "the service failed"
	}
	s.ext().lastError = msg
	g.failedOwn = append(g.failedOwn, s.id)
	c := g.jobs.get(sv.client)
	if c == nil || c.succ == nil {
		return
	}
	c.failedSucc = true
	c.succ.svcLive--
	if c.state == jobstore.StateServices {
		// Its successors never ran and now never will.
		c.succ.ending = true
	}
	g.stopServices(c)
	// Dropping a service that was never issued may have settled the
	// client already (and a checkpoint's restart clears c.succ).
	if c.succ != nil && c.succ.svcLive == 0 && c.succ.ending {
		c.succ.ending = false
		g.settle(c)
	}
}

// resumeServices prepares, before derive, the clients of a loaded
// workflow whose services may have been running when the last leader
// stopped: services do not outlive their leader (they are killed with
// it, or told to stop when a new one takes over their folder), so a
// client with live services goes back to starting them, and its
// successors wait again. It returns those clients; startServices is
// called on them after derive.
func (g *graph) resumeServices() (restart, failed []*ljob) {
	for _, c := range g.jobs.all() {
		if c.services().Len() == 0 || !c.live() || c.state == jobstore.StatePending {
			continue
		}
		live, bad := 0, false
		for id := range c.services().All() {
			s := g.jobs.get(id)
			switch {
			case s == nil:
			case s.state == jobstore.StateFailed:
				bad = true
			case s.state == jobstore.StatePending:
				live++
			}
		}
		switch {
		case bad:
			// A service failed: drop the others and fail the client once
			// its successors (if reached) settle.
			for id := range c.services().All() {
				if s := g.jobs.get(id); s != nil && s.state == jobstore.StatePending {
					g.remove(s)
				}
			}
			c.failedSucc = true
			if c.state == jobstore.StateServices {
				failed = append(failed, c)
			}
		case live > 0:
			g.setState(c, jobstore.StateServices)
			restart = append(restart, c)
		}
	}
	return restart, failed
}
