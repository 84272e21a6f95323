package gaffer

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/jobstore"
)

// Pure tests of the graph's services, service limits, checkpoints,
// cancellation and resumption, driven by sched (state_internal_test.go).

// addSvc adds service id of client (a child service of parent, unless
// parent is 0), as a job adds one while it builds its graph.
func (s *sched) addSvc(client, id, parent JobID, preemptible bool) {
	s.t.Helper()
	fj := testJob("test.service")
	fj.Service = true
	fj.Req = &Requirements{Cores: 0.1, Preemptible: preemptible}
	if parent != 0 {
		a := s.adds[client]
		require.NotNil(s.t, a, "a child service comes with its parent")
		fj.Links = &fragLinks{ParentSvc: s.tmpOf(a, parent)}
	}
	s.add(client, id, fj, true)
}

// started reports that issued service id started, as the transport
// reports it to the leader.
func (s *sched) started(id JobID) {
	s.t.Helper()
	s.step()
	j := s.job(id)
	require.Equal(s.t, isIssued, j.where, "service %d starts only once issued", id)
	require.Equal(s.t, svcStarting, j.svc().phase)
	require.True(s.t, s.g.serviceReport(startReport{Job: id, Epoch: s.g.epoch, Seq: j.seq, Value: json.RawMessage(`"addr"`)}))
	s.apply()
	require.Equal(s.t, json.RawMessage(`"addr"`), json.RawMessage(s.st.results[id]), "its value is stored")
}

// ended reports that service id, asked to stop, ended well.
func (s *sched) ended(id JobID) {
	s.t.Helper()
	require.Equal(s.t, svcStopping, s.job(id).svc().phase, "service %d was asked to stop", id)
	s.succeed(id)
}

// failedRunning reports that service id failed after it started: no
// retry, the service fails totally.
func (s *sched) failedRunning(id JobID, msg string) {
	s.t.Helper()
	require.Equal(s.t, svcRunning, s.phase(id))
	s.fail(id, msg, false)
}

func (s *sched) phase(id JobID) svcPhase {
	s.t.Helper()
	return s.job(id).svc().phase
}

func idsOf(js []*ljob) []JobID {
	var out []JobID
	for _, j := range js {
		out = append(out, j.id)
	}
	return out
}

// takeStops returns the services asked to stop since the last call.
func (s *sched) takeStops() []JobID {
	s.step()
	out := s.st.stops
	s.st.stops = nil
	return out
}

// takeKills returns the attempts killed since the last call.
func (s *sched) takeKills() []JobID {
	s.step()
	out := s.st.kills
	s.st.kills = nil
	return out
}

// A client's successors wait for all its services to start, and the
// client ends only once its services, stopped after the successors
// settled, have ended.
func TestGraphServicesGateChildrenAndOutliveThem(t *testing.T) {
	// 1 ─c→ 2 ─c→ 3, 4; services of 2: 10, 11.
	s := newSched(t, map[JobID]jobEdges{1: {children: []JobID{2}}, 2: {children: []JobID{3, 4}}})
	s.addSvc(2, 10, 0, false)
	s.addSvc(2, 11, 0, false)
	require.Equal(t, []JobID{1}, s.drain(), "services wait for their client's body")
	s.succeed(1)
	require.Equal(t, []JobID{2}, s.drain())
	require.Equal(t, "service of test.kind (j2), waiting for its client's body to finish", s.g.why(10))

	s.succeed(2)
	require.Equal(t, jobstore.StateServices, s.state(2))
	require.Equal(t, []JobID{10, 11}, s.drain(), "the services, not the children")
	require.Equal(t, "body done; waiting for 2 of its services to start", s.g.why(2))
	require.Equal(t, "service of test.kind (j2), issued; not yet started", s.g.why(10))
	require.Equal(t, 2, s.g.services)

	s.started(10)
	require.Equal(t, svcRunning, s.phase(10))
	require.Equal(t, jobstore.StateServices, s.state(2))
	require.Empty(t, s.drain(), "one service has not started")
	require.Equal(t, nowhere, s.job(3).where)
	require.Equal(t, int32(0), s.job(3).reached)
	require.Equal(t, "waiting for 1 of 1 predecessor(s): [test.kind (j2) (its services have not all started)]", s.g.why(3))

	s.started(11)
	require.Equal(t, jobstore.StateChildren, s.state(2))
	require.Equal(t, []JobID{3, 4}, s.drain())
	require.Empty(t, s.st.stops)

	s.succeed(3)
	require.Empty(t, s.st.stops, "a child is still running: the services keep running")
	s.succeed(4)
	require.Equal(t, jobstore.StateChildren, s.state(2), "not done while its services run")
	require.Equal(t, []JobID{10, 11}, s.takeStops())
	require.Equal(t, svcStopping, s.phase(10))
	require.Equal(t, svcStopping, s.phase(11))
	require.Equal(t, "successors done; waiting for 2 service(s) to stop", s.g.why(2))
	require.Equal(t, "service of test.kind (j2), asked to stop", s.g.why(10))
	require.NotEqual(t, jobstore.StatusSucceeded, s.outcome())

	s.ended(10)
	require.Nil(t, s.g.jobs.get(10))
	require.Equal(t, jobstore.StateChildren, s.state(2), "one service still runs")
	require.Equal(t, 1, s.g.services)
	require.NotEqual(t, jobstore.StatusSucceeded, s.outcome())

	s.ended(11)
	require.Nil(t, s.g.jobs.get(2), "the client's subtree is done")
	require.ElementsMatch(t, []JobID{3, 4, 10, 11, 2}, s.st.deleted)
	require.Equal(t, jobstore.StatusSucceeded, s.outcome())
	require.Equal(t, 0, s.g.services)
	require.Equal(t, [2]int{}, s.g.svcSlots)
	require.Empty(t, s.st.stops)
	require.Empty(t, s.g.failedOwn)
}

// The root as a client with no successors: it is done, and kept, once its
// service ends.
func TestGraphServiceOfTheRoot(t *testing.T) {
	s := newSched(t, map[JobID]jobEdges{1: {}})
	s.addSvc(1, 10, 0, false)
	s.drain()
	s.succeed(1)
	require.Equal(t, []JobID{10}, s.drain())
	s.started(10)
	require.Equal(t, []JobID{10}, s.takeStops(), "nothing uses it: it is stopped at once")
	require.NotEqual(t, jobstore.StatusSucceeded, s.outcome())
	s.ended(10)
	require.Equal(t, jobstore.StatusSucceeded, s.outcome())
	require.Equal(t, jobstore.StateDone, s.state(1))
	require.NotNil(t, s.g.jobs.get(1), "the root's record is kept")
	require.Equal(t, []JobID{10}, s.st.deleted)
}

// A child service is made ready only once its parent service started.
func TestGraphChildServiceWaitsForParent(t *testing.T) {
	// 1 ─c→ 2 ─c→ 3; services of 2: 10, and 11, a child service of 10.
	s := newSched(t, map[JobID]jobEdges{1: {children: []JobID{2}}, 2: {children: []JobID{3}}})
	s.addSvc(2, 10, 0, false)
	s.addSvc(2, 11, 10, false)
	s.drain()
	s.succeed(1)
	s.drain()
	s.succeed(2)
	require.Equal(t, []JobID{10}, s.drain(), "only the top service")
	require.Equal(t, svcWaiting, s.phase(11))
	require.Equal(t, nowhere, s.job(11).where)
	require.Equal(t, "service of test.kind (j2), waiting for its parent service j10 to start", s.g.why(11))
	require.Equal(t, 1, s.g.svcSlots[0], "a waiting service holds no place")

	s.started(10)
	require.Equal(t, svcStarting, s.phase(11))
	require.Equal(t, []JobID{11}, s.drain())
	require.Equal(t, jobstore.StateServices, s.state(2), "the child service has not started")
	require.Equal(t, "body done; waiting for 1 of its services to start", s.g.why(2))

	s.started(11)
	require.Equal(t, []JobID{3}, s.drain())
	s.succeed(3)
	require.ElementsMatch(t, []JobID{10, 11}, s.takeStops())
	s.ended(11)
	s.ended(10)
	require.Equal(t, jobstore.StatusSucceeded, s.outcome())
}

// Under Config.MaxServices, services beyond the limit queue, and each
// place given back goes to the first in the queue. Preemptible services
// count against their own limit.
func TestGraphServiceLimitQueuesFIFO(t *testing.T) {
	// 1 ─c→ 2, 3, 4, 5; services: 20 of 2, 30 of 3, 40 of 4; preemptible
	// 50 and 51 of 5.
	s := newSched(t, map[JobID]jobEdges{1: {children: []JobID{2, 3, 4, 5}}})
	s.g.svcMax = [2]int{1, 0}
	s.addSvc(2, 20, 0, false)
	s.addSvc(3, 30, 0, false)
	s.addSvc(4, 40, 0, false)
	s.addSvc(5, 50, 0, true)
	s.addSvc(5, 51, 0, true)
	s.drain()
	s.succeed(1)
	require.Equal(t, []JobID{2, 3, 4, 5}, s.drain())
	s.succeed(2) // 20 takes the only place
	s.succeed(4) // 40 queues first
	s.succeed(3) // then 30
	require.Equal(t, 1, s.g.svcSlots[0])
	require.Equal(t, svcStarting, s.phase(20))
	require.Equal(t, svcQueued, s.phase(40))
	require.Equal(t, svcQueued, s.phase(30))
	require.Equal(t, "service of test.kind (j4), queued: the service limit (1) is reached (Config.MaxServices or MaxPreemptibleServices)", s.g.why(40))
	require.Equal(t, []JobID{20}, s.drain())

	s.succeed(5)
	require.Equal(t, []JobID{50, 51}, s.drain(), "preemptible services have a limit of their own, none here")
	require.Equal(t, [2]int{1, 2}, s.g.svcSlots)

	// 20's client has no successors: once started, it is stopped.
	s.started(20)
	require.Equal(t, []JobID{20}, s.takeStops())
	require.Equal(t, svcQueued, s.phase(40), "a stopping service keeps its place until it ends")
	s.ended(20)
	require.Equal(t, 1, s.g.svcSlots[0])
	require.Equal(t, svcStarting, s.phase(40), "first queued, first admitted")
	require.Equal(t, svcQueued, s.phase(30))
	require.Equal(t, []JobID{40}, s.drain())

	s.started(40)
	require.Equal(t, []JobID{40}, s.takeStops())
	s.ended(40)
	require.Equal(t, svcStarting, s.phase(30))
	require.Equal(t, []JobID{30}, s.drain())
	s.started(30)
	s.takeStops()
	s.ended(30)
	require.Equal(t, 0, s.g.svcSlots[0])

	for _, id := range []JobID{50, 51} {
		s.started(id)
	}
	require.Equal(t, []JobID{50, 51}, s.takeStops())
	s.ended(50)
	s.ended(51)
	require.Equal(t, [2]int{}, s.g.svcSlots)
	require.Equal(t, 0, s.g.services)
	require.Equal(t, jobstore.StatusSucceeded, s.outcome())
}

// Ordinary and preemptible services hold places under separate limits:
// a place of one kind given back admits no service of the other.
func TestGraphServiceLimitPreemptibleSeparate(t *testing.T) {
	// 1 ─c→ 2, 3, 4; services: 20 of 2, preemptible 30 of 3 and 40 of 4.
	s := newSched(t, map[JobID]jobEdges{1: {children: []JobID{2, 3, 4}}})
	s.g.svcMax = [2]int{1, 1}
	s.addSvc(2, 20, 0, false)
	s.addSvc(3, 30, 0, true)
	s.addSvc(4, 40, 0, true)
	s.drain()
	s.succeed(1)
	s.drain()
	s.succeed(2)
	s.succeed(3)
	s.succeed(4)
	require.Equal(t, [2]int{1, 1}, s.g.svcSlots)
	require.Equal(t, svcQueued, s.phase(40))
	require.Equal(t, []JobID{20, 30}, s.drain())

	s.started(20)
	s.takeStops()
	s.ended(20)
	require.Equal(t, [2]int{0, 1}, s.g.svcSlots)
	require.Equal(t, svcQueued, s.phase(40), "an ordinary place does not admit a preemptible service")
	require.Empty(t, s.drain())

	s.started(30)
	s.takeStops()
	s.ended(30)
	require.Equal(t, svcStarting, s.phase(40))
	require.Equal(t, [2]int{0, 1}, s.g.svcSlots)
	require.Equal(t, []JobID{40}, s.drain())
}

// A service that fails before it started, with no tries left, fails its
// client: the client's other services are stopped (issued) or dropped
// (never issued), its successors never run, and the failure climbs.
func TestGraphServiceFailsBeforeStart(t *testing.T) {
	// 1 ─c→ 2; 2 ─c→ 3, 2 ─f→ 4; services of 2: 10, 11, and 12, a child
	// service of 11.
	s := newSched(t, map[JobID]jobEdges{1: {children: []JobID{2}}, 2: {children: []JobID{3}, followOns: []JobID{4}}})
	s.addSvc(2, 10, 0, false)
	s.addSvc(2, 11, 0, false)
	s.addSvc(2, 12, 11, false)
	s.setRetries(10, 0)
	s.drain()
	s.succeed(1)
	s.drain()
	s.succeed(2)
	require.Equal(t, []JobID{10, 11}, s.drain())
	require.Equal(t, 3, s.g.services)

	s.fail(10, "port in use", false)
	require.Equal(t, jobstore.StateFailed, s.state(10))
	require.Equal(t, "port in use", s.job(10).extra().lastError)
	require.Equal(t, []JobID{10}, s.g.failedOwn)
	require.Equal(t, []JobID{11}, s.takeStops(), "the issued service is asked to stop")
	require.Equal(t, svcStopping, s.phase(11))
	require.Nil(t, s.g.jobs.get(12), "the never-issued child service is dropped")
	require.Contains(t, s.st.deleted, JobID(12))
	require.Equal(t, 1, s.g.services)
	require.Equal(t, 1, s.g.svcSlots[0], "11 holds its place until it ends")
	require.Equal(t, jobstore.StateServices, s.state(2), "the client waits for 11 to end")
	require.Equal(t, "ending: waiting for 1 service(s) to stop", s.g.why(2))
	require.Equal(t, jobstore.StatePending, s.state(3))
	require.Empty(t, s.drain(), "the children never run")
	require.NotEqual(t, jobstore.StatusFailed, s.outcome())

	s.ended(11)
	require.Equal(t, jobstore.StateFailed, s.state(2))
	require.Empty(t, s.job(2).extra().lastError, "it failed because of its service")
	for _, id := range []JobID{3, 4} {
		require.Equal(t, jobstore.StateSkipped, s.state(id), "job %d", id)
		require.Equal(t, JobID(2), s.job(id).extra().cause)
	}
	require.Equal(t, 2, s.g.skipped)
	require.Equal(t, jobstore.StateFailed, s.state(1))
	require.Equal(t, jobstore.StatusFailed, s.outcome())
	require.Equal(t, []JobID{10}, s.g.failedOwn)
	require.Equal(t, 0, s.g.services)
	require.Equal(t, [2]int{}, s.g.svcSlots)
	require.Empty(t, s.drain())
}

// A checkpoint whose subtree fails runs again, with a fresh subtree, while
// it has tries left; then it fails.
func TestGraphCheckpointRestartsSubtree(t *testing.T) {
	// 1 ─c→ 2 (checkpoint, one retry); 2 ─c→ 3, 5; 3 ─c→ 4.
	s := newSched(t, map[JobID]jobEdges{1: {children: []JobID{2}}, 2: {children: []JobID{3, 5}}, 3: {children: []JobID{4}}})
	s.edit(2, func(j *ljob) { j.checkpoint, j.retries = true, 1 })
	s.setRetries(3, 0)
	cp := s.job(2)
	s.drain()
	s.succeed(1)
	require.Equal(t, []JobID{2}, s.drain())
	s.succeed(2)
	require.Equal(t, []JobID{3, 5}, s.drain())
	s.succeed(5)
	require.Contains(t, s.st.deleted, JobID(5))

	s.fail(3, "boom", false)
	require.Equal(t, 1, s.g.restarted)
	require.Nil(t, s.g.jobs.get(3))
	require.Nil(t, s.g.jobs.get(4), "the skipped grandchild goes too")
	require.Subset(t, s.st.deleted, []JobID{3, 4, 5})
	require.Equal(t, 0, s.g.skipped, "the skipped job removed is no longer counted")
	require.Same(t, cp, s.job(2))
	require.Equal(t, jobstore.StatePending, cp.state)
	require.Equal(t, int32(1), cp.tries)
	require.Empty(t, cp.children(), "the new run makes its own subtree")
	require.Equal(t, "checkpoint restarted: its subtree failed (test.kind (j3): boom)", cp.extra().lastError)
	require.Equal(t, inBackoff, cp.where, "a restart waits out the backoff")
	require.Equal(t, s.clock.Add(2*time.Second).UnixNano(), cp.extra().notBefore)
	require.Equal(t, jobstore.StateChildren, s.state(1))
	require.NotEqual(t, jobstore.StatusFailed, s.outcome())
	require.Empty(t, s.takeKills(), "nothing of the subtree was running")

	s.advance(2 * time.Second)
	require.Equal(t, []JobID{2}, s.drain())
	// The second run returns a child that fails too: no tries are left.
	s.addChildJob(2, 7)
	s.succeed(2)
	s.setRetries(7, 0)
	require.Equal(t, []JobID{7}, s.drain())
	s.fail(7, "boom again", false)
	require.Equal(t, 1, s.g.restarted, "no second restart")
	require.Equal(t, jobstore.StateFailed, s.state(2))
	require.Equal(t, jobstore.StateFailed, s.state(7))
	require.Equal(t, jobstore.StatusFailed, s.outcome())
	require.Contains(t, s.g.failedOwn, JobID(7))
}

// A checkpoint without retries fails like any job.
func TestGraphCheckpointOutOfTries(t *testing.T) {
	s := newSched(t, map[JobID]jobEdges{1: {children: []JobID{2}}, 2: {children: []JobID{3}}})
	s.edit(2, func(j *ljob) { j.checkpoint, j.retries = true, 0 })
	s.setRetries(3, 0)
	s.drain()
	s.succeed(1)
	s.drain()
	s.succeed(2)
	s.drain()
	s.fail(3, "boom", false)
	require.Equal(t, 0, s.g.restarted)
	require.Equal(t, jobstore.StateFailed, s.state(2))
	require.Equal(t, jobstore.StateFailed, s.state(3), "the failed subtree is kept")
	require.Equal(t, int32(0), s.job(2).tries)
	require.Equal(t, jobstore.StatusFailed, s.outcome())
}

// A checkpoint whose service fails restarts too: its services and
// successors are forgotten with the rest of its subtree.
func TestGraphCheckpointRestartsAfterServiceFails(t *testing.T) {
	// 1 ─c→ 2 (checkpoint, one retry) ─c→ 3; services of 2: 10 (no
	// retries) and 11.
	s := newSched(t, map[JobID]jobEdges{1: {children: []JobID{2}}, 2: {children: []JobID{3}}})
	s.edit(2, func(j *ljob) { j.checkpoint, j.retries = true, 1 })
	s.addSvc(2, 10, 0, false)
	s.addSvc(2, 11, 0, false)
	s.setRetries(10, 0)
	s.drain()
	s.succeed(1)
	s.drain()
	s.succeed(2)
	require.Equal(t, []JobID{10, 11}, s.drain())
	s.fail(10, "port in use", false)
	require.Equal(t, []JobID{11}, s.takeStops())
	require.Equal(t, 0, s.g.restarted, "not before 11 has ended")

	s.ended(11)
	require.Equal(t, 1, s.g.restarted)
	require.Equal(t, jobstore.StatePending, s.state(2))
	require.Equal(t, int32(1), s.job(2).tries)
	require.Empty(t, s.job(2).services())
	require.ElementsMatch(t, []JobID{3, 10, 11}, s.st.deleted)
	require.Equal(t, 0, s.g.skipped, "3 was never skipped")
	require.Equal(t, 0, s.g.services)
	require.Equal(t, [2]int{}, s.g.svcSlots)
	require.NotEqual(t, jobstore.StatusFailed, s.outcome())
}

// As above, but the failed service's sibling was never issued (a child
// service waiting for it), so dropping it is what settles the checkpoint.
func TestGraphCheckpointRestartsWhenUnissuedServiceDropped(t *testing.T) {
	// 1 ─c→ 2 (checkpoint, one retry) ─c→ 3; services of 2: 10 (no
	// retries) and 11, a child service of 10.
	s := newSched(t, map[JobID]jobEdges{1: {children: []JobID{2}}, 2: {children: []JobID{3}}})
	s.edit(2, func(j *ljob) { j.checkpoint, j.retries = true, 1 })
	s.addSvc(2, 10, 0, false)
	s.addSvc(2, 11, 10, false)
	s.setRetries(10, 0)
	s.drain()
	s.succeed(1)
	s.drain()
	s.succeed(2)
	require.Equal(t, []JobID{10}, s.drain())

	require.NotPanics(t, func() { s.fail(10, "port in use", false) })
	require.Equal(t, 1, s.g.restarted)
	require.Equal(t, jobstore.StatePending, s.state(2))
	require.ElementsMatch(t, []JobID{3, 10, 11}, s.st.deleted)
	require.Equal(t, 0, s.g.services)
	require.Equal(t, [2]int{}, s.g.svcSlots)
	require.Empty(t, s.st.stops)
}

// A restarted checkpoint forgets its subtree; a leader that resumes from
// the records must see the same failures as the live one.
func TestGraphCheckpointRestartThenReload(t *testing.T) {
	s := newSched(t, map[JobID]jobEdges{1: {children: []JobID{2}}, 2: {children: []JobID{3}}})
	s.edit(2, func(j *ljob) { j.checkpoint, j.retries = true, 1 })
	s.setRetries(3, 0)
	s.drain()
	s.succeed(1)
	s.drain()
	s.succeed(2)
	s.drain()
	s.fail(3, "boom", false)
	require.Equal(t, 1, s.g.restarted)
	r := reload(t, s)
	require.ElementsMatch(t, r.g.failedOwn, s.g.failedOwn, "a resumed leader counts the same failures")
	for _, id := range s.g.failedOwn {
		require.NotNil(t, s.g.jobs.get(id), "failedOwn lists only live records")
	}
}

// Cancelling an issued job kills it, cancels its subtree, and its parent
// ends cancelled, not failed, once its other children settle.
func TestGraphCancelIssuedJob(t *testing.T) {
	// 1 ─c→ 2, 3; 1 ─f→ 5; 2 ─c→ 4.
	s := newSched(t, map[JobID]jobEdges{1: {children: []JobID{2, 3}, followOns: []JobID{5}}, 2: {children: []JobID{4}}})
	s.drain()
	s.succeed(1)
	require.Equal(t, []JobID{2, 3}, s.drain())

	require.True(t, s.g.cancel(2))
	require.Equal(t, []JobID{2}, s.takeKills())
	require.Equal(t, jobstore.StateCancelled, s.state(2))
	require.Equal(t, jobstore.StateCancelled, s.state(4), "its successors too")
	require.Equal(t, "cancelled", s.g.why(4))
	require.Equal(t, []JobID{2}, s.g.cancelled)
	require.Equal(t, jobstore.StateChildren, s.state(1), "the parent waits for its other child")
	require.True(t, s.job(1).cancelledSucc)
	require.Equal(t, int32(1), s.job(1).pending)
	require.NotEqual(t, jobstore.StatusCancelled, s.outcome())

	require.False(t, s.g.cancel(2), "already cancelled")
	require.False(t, s.g.cancel(4), "already cancelled")
	require.False(t, s.g.cancel(99), "unknown")

	s.succeed(3)
	require.False(t, s.g.cancel(3), "finished")
	require.Equal(t, jobstore.StateCancelled, s.state(1))
	require.Equal(t, jobstore.StatusCancelled, s.outcome())
	require.NotEqual(t, jobstore.StatusFailed, s.outcome())
	require.Equal(t, jobstore.StateSkipped, s.state(5), "the follow-on never runs")
	require.Empty(t, s.g.failedOwn)
	require.Empty(t, s.drain())
	require.Empty(t, s.takeKills())
	require.Equal(t, []JobID{2}, s.g.cancelled)
}

func TestGraphCancelRoot(t *testing.T) {
	// 1 ─c→ 2, 3; 2 ─c→ 4.
	s := newSched(t, map[JobID]jobEdges{1: {children: []JobID{2, 3}}, 2: {children: []JobID{4}}})
	s.setRetries(3, 3)
	s.drain()
	s.succeed(1)
	require.Equal(t, []JobID{2, 3}, s.drain())
	s.fail(3, "flaky", false) // in backoff: not killed
	require.Equal(t, inBackoff, s.job(3).where)

	require.True(t, s.g.cancel(1))
	require.Equal(t, []JobID{2}, s.takeKills())
	for _, id := range []JobID{1, 2, 3, 4} {
		require.Equal(t, jobstore.StateCancelled, s.state(id), "job %d", id)
	}
	require.Equal(t, jobstore.StatusCancelled, s.outcome())
	require.NotEqual(t, jobstore.StatusFailed, s.outcome())
	require.NotEqual(t, jobstore.StatusSucceeded, s.outcome())
	require.Equal(t, []JobID{1}, s.g.cancelled)
	require.Equal(t, time.Duration(0), s.advance(time.Minute))
	require.Empty(t, s.drain(), "the job in backoff is not issued again")
	require.False(t, s.g.cancel(1))
}

// Cancelling a service cancels its client, with the client's successors
// and other services, and gives back the service's place.
func TestGraphCancelServiceCancelsClient(t *testing.T) {
	// 1 ─c→ 2, 5; 2 ─c→ 3; services: 10 and 11 of 2, 50 of 5.
	s := newSched(t, map[JobID]jobEdges{1: {children: []JobID{2, 5}}, 2: {children: []JobID{3}}})
	s.g.svcMax = [2]int{2, 0}
	s.addSvc(2, 10, 0, false)
	s.addSvc(2, 11, 0, false)
	s.addSvc(5, 50, 0, false)
	s.drain()
	s.succeed(1)
	require.Equal(t, []JobID{2, 5}, s.drain())
	s.succeed(2)
	s.succeed(5)
	require.Equal(t, svcQueued, s.phase(50))
	require.Equal(t, []JobID{10, 11}, s.drain())
	s.started(10)
	s.started(11)
	require.Equal(t, []JobID{3}, s.drain())
	require.Equal(t, 3, s.g.services)

	require.True(t, s.g.cancel(11))
	require.Equal(t, []JobID{2}, s.g.cancelled, "the client is what is cancelled")
	require.ElementsMatch(t, []JobID{3, 10, 11}, s.takeKills())
	for _, id := range []JobID{2, 3, 10, 11} {
		require.Equal(t, jobstore.StateCancelled, s.state(id), "job %d", id)
	}
	require.Equal(t, 1, s.g.services, "only 50 is left")
	require.Equal(t, 1, s.g.svcSlots[0], "the places of 10 and 11 went to 50")
	require.Equal(t, svcStarting, s.phase(50))
	require.Equal(t, []JobID{50}, s.drain())
	require.False(t, s.g.cancel(10), "its client is cancelled already")

	s.started(50)
	s.takeStops()
	s.ended(50)
	require.Equal(t, jobstore.StateCancelled, s.state(1))
	require.Equal(t, jobstore.StatusCancelled, s.outcome())
	require.Equal(t, 0, s.g.services)
	require.Equal(t, [2]int{}, s.g.svcSlots)
}

// Cancelling the workflow kills every issued job, and only those, and
// leaves the records as they are.
func TestGraphCancelWorkflow(t *testing.T) {
	// 1 ─c→ 2, 3, 4; 2 ─c→ 5.
	s := newSched(t, map[JobID]jobEdges{1: {children: []JobID{2, 3, 4}}, 2: {children: []JobID{5}}})
	s.drain()
	s.succeed(1)
	require.Equal(t, []JobID{2, 3, 4}, s.drain())
	s.succeed(2)
	require.Equal(t, inReady, s.job(5).where)
	s.fail(4, "flaky", false)
	require.Equal(t, inBackoff, s.job(4).where)

	s.g.cancelWorkflow()
	require.Equal(t, jobstore.StatusCancelled, s.outcome())
	require.Equal(t, []JobID{3}, s.takeKills(), "neither the ready job nor the one in backoff")
	require.Equal(t, jobstore.StatePending, s.state(3), "records are left as they are")
	require.Equal(t, jobstore.StateChildren, s.state(1))
	require.Empty(t, s.g.cancelled)
}

// resumeLoad loads s's records into a new graph as the leader's load
// does, up to graph.reload, and returns the clients it found to restart
// and to fail; resume finishes the load.
func resumeLoad(t *testing.T, s *sched) (r *sched, restart, failed []JobID) {
	r, settled, rs, fs := load(t, s)
	require.Empty(t, settled)
	r.resume = func() { r.g.resumed(settled, rs, fs, jobstore.StatusRunning); r.step() }
	r.step()
	return r, sortedIDs(idsOf(rs)), sortedIDs(idsOf(fs))
}

// runningClient builds 1 ─c→ 2 ─c→ 3 with services 10 and 11 of 2, both
// started, and 3 issued: 2 is in StateChildren.
func runningClient(t *testing.T) *sched {
	s := newSched(t, map[JobID]jobEdges{1: {children: []JobID{2}}, 2: {children: []JobID{3}}})
	s.addSvc(2, 10, 0, false)
	s.addSvc(2, 11, 0, false)
	s.drain()
	s.succeed(1)
	s.drain()
	s.succeed(2)
	require.Equal(t, []JobID{10, 11}, s.drain())
	s.started(10)
	s.started(11)
	require.Equal(t, []JobID{3}, s.drain())
	require.Equal(t, jobstore.StateChildren, s.state(2))
	return s
}

// A service that fails while its client's children run stops the other
// services but leaves the children running; the client fails once they
// have settled, not when its last service ends.
func TestGraphServiceFailsWhileChildrenRun(t *testing.T) {
	s := runningClient(t)
	s.failedRunning(10, "crashed")
	require.Equal(t, jobstore.StateFailed, s.state(10))
	require.Equal(t, "the service failed while running: crashed", s.job(10).extra().lastError)
	require.Equal(t, []JobID{10}, s.g.failedOwn)
	require.Equal(t, []JobID{11}, s.takeStops())
	require.True(t, s.job(2).failedSucc)
	require.Equal(t, isIssued, s.job(3).where, "the running child is left alone")
	require.Empty(t, s.takeKills())

	s.ended(11)
	require.Equal(t, jobstore.StateChildren, s.state(2), "its child still runs")
	require.NotEqual(t, jobstore.StatusFailed, s.outcome())
	require.Equal(t, 0, s.g.services)

	s.succeed(3)
	require.Equal(t, jobstore.StateFailed, s.state(2))
	require.Equal(t, jobstore.StatusFailed, s.outcome())
	require.Equal(t, []JobID{10}, s.g.failedOwn)
}

// A client whose services were live when its leader stopped starts them
// again, and its successors wait for them again.
func TestGraphResumeServicesRestartsClient(t *testing.T) {
	s := runningClient(t)

	r, restart, failed := resumeLoad(t, s)
	require.Equal(t, []JobID{2}, restart)
	require.Empty(t, failed)
	require.Equal(t, jobstore.StateServices, r.state(2))
	require.Contains(t, r.st.written, JobID(2), "the new state is written")
	require.Equal(t, 2, r.g.services)
	require.Empty(t, r.drain(), "neither the services nor the child are ready yet")
	require.Equal(t, int32(0), r.job(3).reached)

	// The leader starts the services of the clients returned.
	r.resume()
	require.Equal(t, []JobID{10, 11}, r.drain())
	r.started(10)
	require.Empty(t, r.drain())
	r.started(11)
	require.Equal(t, []JobID{3}, r.drain())
	r.succeed(3)
	require.Equal(t, []JobID{10, 11}, r.takeStops())
	r.ended(10)
	r.ended(11)
	require.Equal(t, jobstore.StatusSucceeded, r.outcome())
	require.Equal(t, 0, r.g.services)
}

// A client with a failed service record drops its other services on
// resumption; the leader fails it at once if its successors never ran.
func TestGraphResumeServicesFailedBeforeSuccessors(t *testing.T) {
	// 1 ─c→ 2 ─c→ 3; services of 2: 10 (no retries), 11.
	s := newSched(t, map[JobID]jobEdges{1: {children: []JobID{2}}, 2: {children: []JobID{3}}})
	s.addSvc(2, 10, 0, false)
	s.addSvc(2, 11, 0, false)
	s.setRetries(10, 0)
	s.drain()
	s.succeed(1)
	s.drain()
	s.succeed(2)
	s.drain()
	s.fail(10, "boom", false)
	require.Equal(t, []JobID{11}, s.takeStops())
	require.Equal(t, jobstore.StateServices, s.state(2))
	// The leader stops before 11 ends.

	r, restart, failed := resumeLoad(t, s)
	require.Empty(t, restart)
	require.Equal(t, []JobID{2}, failed)
	require.Nil(t, r.g.jobs.get(11), "the live service record is removed")
	require.Equal(t, []JobID{11}, r.st.deleted)
	require.Equal(t, 0, r.g.services)
	require.Equal(t, jobstore.StateFailed, r.state(10), "the failed record is kept")
	require.Equal(t, []JobID{10}, r.g.failedOwn)
	require.Empty(t, r.drain())

	// The leader settles the clients returned.
	r.resume()
	require.Equal(t, jobstore.StateFailed, r.state(2))
	require.Equal(t, jobstore.StateSkipped, r.state(3))
	require.Equal(t, jobstore.StatusFailed, r.outcome())
	require.Empty(t, r.takeStops())
}

// A client whose service failed while its children ran is not failed at
// once on resumption: it fails once its children settle.
func TestGraphResumeServicesFailedWhileChildrenRun(t *testing.T) {
	s := runningClient(t)
	s.failedRunning(10, "crashed")
	require.Equal(t, []JobID{11}, s.takeStops())
	// The leader stops before 11 ends and 3 finishes.

	r, restart, failed := resumeLoad(t, s)
	require.Empty(t, restart)
	require.Empty(t, failed, "its successors have yet to settle")
	require.Nil(t, r.g.jobs.get(11))
	require.True(t, r.job(2).failedSucc)
	require.Equal(t, jobstore.StateChildren, r.state(2))
	require.Equal(t, []JobID{3}, r.drain(), "the child runs again")
	r.succeed(3)
	require.Equal(t, jobstore.StateFailed, r.state(2))
	require.Equal(t, jobstore.StatusFailed, r.outcome())
	require.Equal(t, []JobID{10}, r.g.failedOwn)
}
