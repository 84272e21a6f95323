package gaffer

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/jobstore"
)

// sched drives a graph through the transitions the leader calls, on a
// clock the test moves, and applies each plan to memStore as the leader
// applies it to the store and the batch system. No test sets a job's
// place in the leader itself.
type sched struct {
	t      *testing.T
	g      *graph
	clock  time.Time
	strict bool // check that succeed and fail are given issued jobs
	st     *memStore
	bs     batchsystem.ID
	// Jobs added under a parent, to be ingested with its next success
	// or at the next step.
	adds map[JobID]*added
	// resume finishes a load (resumeLoad).
	resume func()
}

// memStore is the pure tests' applier: the records, results and effects
// of every plan applied.
type memStore struct {
	records map[JobID]jobstore.Job
	inputs  map[JobID][]byte
	results map[JobID][]byte
	next    JobID
	deleted []JobID         // every record deleted, in order
	written map[JobID]bool  // every record written
	kills   []JobID         // attempts killed, until taken
	stops   []JobID         // services asked to stop, until taken
	ended   jobstore.Status // the workflow's end as recorded
}

func newMemStore() *memStore {
	return &memStore{records: map[JobID]jobstore.Job{}, inputs: map[JobID][]byte{}, results: map[JobID][]byte{}, next: 1, written: map[JobID]bool{}}
}

// copyRecord is j's record with nothing shared with memory.
func copyRecord(g *graph, j *ljob) jobstore.Job {
	var r jobstore.Job
	g.record(j, &r)
	r.Preds = slices.Clone(r.Preds)
	r.Children, r.FollowOns, r.Services = slices.Clone(r.Children), slices.Clone(r.FollowOns), slices.Clone(r.Services)
	r.Categories = slices.Clone(r.Categories)
	return r
}

// apply takes the graph's plan and applies it in Leader.apply's order.
func (s *sched) apply() {
	s.t.Helper()
	p, st := s.g.take(), s.st
	for _, a := range p.kill {
		st.kills = append(st.kills, a.job)
	}
	if p.alloc.n > 0 {
		require.GreaterOrEqual(s.t, p.alloc.first, st.next, "IDs are never reused")
		st.next = p.alloc.first + JobID(p.alloc.n)
	}
	for _, c := range p.created {
		for i := range c.jobs {
			j := &c.jobs[i]
			require.NotContains(s.t, st.records, j.id, "a new job's ID is new")
			st.records[j.id], st.written[j.id] = copyRecord(s.g, j), true
			st.inputs[j.id] = slices.Clone(c.inputs[i])
		}
	}
	for _, r := range p.results {
		st.results[r.id] = slices.Clone(r.value)
	}
	for _, id := range p.deleted {
		delete(st.records, id)
		delete(st.inputs, id)
		st.deleted = append(st.deleted, id)
	}
	for _, id := range p.dropped {
		delete(st.results, id)
	}
	for id, j := range p.dirty {
		require.Contains(s.t, st.records, id, "a rewritten record exists")
		st.records[id], st.written[id] = copyRecord(s.g, j), true
	}
	if p.ended {
		st.ended = s.g.outcome
	}
	for _, a := range p.stop {
		if s.g.isIssued(a) {
			st.stops = append(st.stops, a.job)
		}
	}
	require.Empty(s.t, s.g.plan.kill, "stops need no kill")
}

type jobEdges struct {
	children, followOns []JobID
	retries             int32 // 0 means the leader's default
}

func defaultGraph(t *testing.T) *graph {
	cfg, err := Config{Store: "unused"}.withDefaults()
	require.NoError(t, err)
	return newGraph(cfg.RetryCount, cfg.RetryBackoff, cfg.RetryBackoffFactor)
}

var testEpoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func testJob(kind string) fragJob {
	return fragJob{Input: json.RawMessage("null"), fragSpec: &fragSpec{Kind: kind, Retries: -1, Req: &Requirements{Cores: 0.1}}}
}

// newSched makes a fresh workflow rooted at job 1 from spec, whose IDs
// run from 1 without gaps, the way the leader's open does: one fragment
// ingested, then derive.
func newSched(t *testing.T, spec map[JobID]jobEdges) *sched {
	s := &sched{t: t, g: defaultGraph(t), clock: testEpoch, strict: true, st: newMemStore(), adds: map[JobID]*added{}}
	s.g.now = func() time.Time { return s.clock }
	s.g.epoch = 1
	all := map[JobID]bool{}
	for id, e := range spec {
		all[id] = true
		for _, c := range slices.Concat(e.children, e.followOns) {
			all[c] = true
		}
	}
	// Jobs 1..n come in the first graph; a job after a gap in the IDs
	// is added under its only parent at the first step.
	n := JobID(0)
	for all[n+1] {
		n++
	}
	var later []JobID
	for id, e := range spec {
		kept := e.children[:0:0]
		for _, c := range e.children {
			if c > n {
				require.Empty(t, spec[c].children, "a job after a gap is a leaf")
				later = append(later, id, c)
			} else {
				kept = append(kept, c)
			}
		}
		e.children = kept
		spec[id] = e
	}
	f := &fragment{Jobs: make([]fragJob, n)}
	for i := range f.Jobs {
		f.Jobs[i] = testJob("test.kind")
		f.Jobs[i].Tmp = -int64(i + 1)
	}
	tmps := func(ids []JobID) []int64 {
		var out []int64
		for _, id := range ids {
			out = append(out, -int64(id))
		}
		return out
	}
	for id, e := range spec {
		fj := &f.Jobs[id-1]
		if e.retries != 0 {
			fj.Retries = e.retries
		}
		if len(e.children)+len(e.followOns) > 0 {
			fj.Links = &fragLinks{Children: tmps(e.children), FollowOns: tmps(e.followOns)}
		}
	}
	require.NoError(t, f.validate(""))
	ids, _, err := s.g.ingest(f, nil, nil)
	require.NoError(t, err)
	s.g.root = ids.get(-1)
	require.Equal(t, JobID(1), s.g.root)
	require.Empty(t, s.g.derive())
	s.apply()
	for i := 0; i < len(later); i += 2 {
		s.addChildJob(later[i], later[i+1])
	}
	return s
}

// added are the jobs queued under one parent, with the ID the first
// one gets.
type added struct {
	first JobID
	f     fragment
}

// add queues a new job under parent (as a child, or as a service), to be
// ingested with the parent's next success, or at the next step if the
// parent is not running. IDs of jobs added under one parent between steps
// follow one another. It returns the job's temporary number.
func (s *sched) add(parent, id JobID, fj fragJob, asService bool) {
	s.t.Helper()
	require.Nil(s.t, s.g.jobs.get(id), "job %d is new", id)
	a := s.adds[parent]
	if a == nil {
		a = &added{first: id}
		s.adds[parent] = a
	}
	require.Equal(s.t, a.first+JobID(len(a.f.Jobs)), id, "added IDs follow one another")
	fj.Tmp = s.tmpOf(a, id)
	a.f.Jobs = append(a.f.Jobs, fj)
	if asService {
		a.f.Services = append(a.f.Services, fj.Tmp)
	} else {
		a.f.Children = append(a.f.Children, fj.Tmp)
	}
}

func (s *sched) tmpOf(a *added, id JobID) int64 { return -int64(id-a.first) - 1 }

// addChildJob adds a new child id under parent.
func (s *sched) addChildJob(parent, id JobID) { s.add(parent, id, testJob("test.kind"), false) }

// takeAdds returns the fragment queued under parent, if any, with the
// graph set to hand out the IDs the test chose (the store's sequence may
// jump forward; it never goes back).
func (s *sched) takeAdds(parent JobID) *fragment {
	a := s.adds[parent]
	if a == nil {
		return nil
	}
	delete(s.adds, parent)
	require.GreaterOrEqual(s.t, a.first, s.g.nextID)
	s.g.nextID = a.first
	return &a.f
}

// step starts every harness action: jobs queued under parents that are
// not running are ingested, as the jobs of a workflow's first graph are.
func (s *sched) step() {
	s.t.Helper()
	for _, parent := range slices.Sorted(maps.Keys(s.adds)) {
		if p := s.g.jobs.get(parent); p != nil && p.where == isIssued {
			continue // they come with its success
		}
		f := s.takeAdds(parent)
		require.NoError(s.t, f.validate(s.job(parent).display()))
		_, _, err := s.g.ingest(f, s.job(parent), nil)
		require.NoError(s.t, err)
	}
	s.apply()
}

// edit changes a job for a test's set-up and writes its record, as if the
// job had been built that way.
func (s *sched) edit(id JobID, fn func(*ljob)) {
	s.step()
	fn(s.job(id))
	s.g.touch(s.job(id))
	s.apply()
}

func (s *sched) setRetries(id JobID, n int32) { s.edit(id, func(j *ljob) { j.retries = n }) }

func (s *sched) job(id JobID) *ljob {
	s.t.Helper()
	j := s.g.jobs.get(id)
	require.NotNil(s.t, j, "job %d is live", id)
	return j
}

// drain issues every ready job, as the leader's issueReady does, and
// returns their IDs in queue order.
func (s *sched) drain() []JobID {
	s.step()
	var out []JobID
	for {
		batch := s.g.pickIssue(s.g.issueRoom(-1, -1))
		if len(batch) == 0 {
			break
		}
		for _, j := range batch {
			s.g.newAttempt(j)
			s.bs++
			s.g.issuedAs(j, s.bs, "")
			out = append(out, j.id)
		}
	}
	s.apply()
	return out
}

// end reports the end of job id's attempt, as the batch system and the
// transport report it to the leader.
func (s *sched) end(id JobID, e event) {
	s.t.Helper()
	j := s.job(id)
	if s.strict {
		require.Equal(s.t, isIssued, j.where, "job %d finishes only once issued", id)
	}
	require.Equal(s.t, jobstore.StatePending, j.state)
	e.j = j
	e.fin = &batchsystem.FinishedJob{ID: j.bsID, ExitCode: 0, Reason: batchsystem.Finished}
	if !e.out.OK {
		e.fin.ExitCode = 1
	}
	s.g.attemptEnded(&e)
	s.apply()
}

// succeed ends job id's attempt with a success, returning the jobs added
// under it since.
func (s *sched) succeed(id JobID) {
	s.step()
	s.end(id, event{out: &outcome{OK: true, Result: json.RawMessage(`"ok"`), Graph: s.takeAdds(id)}})
}

func (s *sched) fail(id JobID, msg string, permanent bool) {
	s.step()
	s.end(id, event{out: &outcome{Error: msg, Permanent: permanent, LogTail: "tail of " + msg}})
}

func (s *sched) advance(d time.Duration) time.Duration {
	s.clock = s.clock.Add(d)
	return s.g.promoteBackoff()
}

func (s *sched) state(id JobID) jobstore.State {
	if j := s.g.jobs.get(id); j != nil {
		return j.state
	}
	return jobstore.StateDone // deleted: its subtree is done
}

func (s *sched) outcome() jobstore.Status { return s.g.outcome }

func sortedIDs(ids []JobID) []JobID {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

func TestRetryBackoffSequence(t *testing.T) {
	s := newSched(t, map[JobID]jobEdges{1: {retries: 3}})
	require.Equal(t, []JobID{1}, s.drain())

	for i, want := range []time.Duration{2 * time.Second, 6 * time.Second, 18 * time.Second} {
		start := s.clock
		s.fail(1, fmt.Sprintf("boom %d", i+1), false)
		j := s.job(1)
		require.Equal(t, jobstore.StatePending, j.state)
		require.Equal(t, int32(i+1), j.tries)
		require.Equal(t, want, j.extra().backoff, "backoff after failure %d", i+1)
		require.Equal(t, start.Add(want).UnixNano(), j.extra().notBefore)
		require.Equal(t, inBackoff, j.where)
		require.Equal(t, 0, s.g.readyLen())
		require.Contains(t, s.g.why(1), "in retry backoff until "+start.Add(want).Format(time.RFC3339))
		require.Contains(t, s.g.why(1), fmt.Sprintf("after %d failed attempt(s)", i+1))

		require.Equal(t, want, s.g.promoteBackoff(), "the wait until the job is due")
		require.Equal(t, time.Millisecond, s.advance(want-time.Millisecond))
		require.Empty(t, s.drain(), "not before NotBefore")
		require.Equal(t, time.Duration(0), s.advance(time.Millisecond), "nothing else waits")
		require.Equal(t, []JobID{1}, s.drain(), "due at NotBefore")
		require.Equal(t, "boom "+fmt.Sprint(i+1), j.extra().lastError)
	}

	// The fourth failure is one too many for Retries 3.
	s.fail(1, "boom 4", false)
	j := s.job(1)
	require.Equal(t, jobstore.StateFailed, j.state)
	require.Equal(t, int32(4), j.tries)
	require.Equal(t, jobstore.StatusFailed, s.outcome())
	require.Equal(t, []JobID{1}, s.g.failedOwn)
	require.Equal(t, "failed: boom 4", s.g.why(1))
	require.Equal(t, "tail of boom 4", j.extra().logTail)
	require.Equal(t, 0, s.g.backoff.Len())
}

func TestDefaultRetryCountAndPermanentFailure(t *testing.T) {
	// Config's default: one retry.
	s := newSched(t, map[JobID]jobEdges{1: {children: []JobID{2, 3}}})
	s.drain()
	s.succeed(1)
	require.Equal(t, []JobID{2, 3}, s.drain())
	s.fail(2, "once", false)
	require.Equal(t, jobstore.StatePending, s.state(2))
	s.advance(2 * time.Second)
	require.Equal(t, []JobID{2}, s.drain())
	s.fail(2, "twice", false)
	require.Equal(t, jobstore.StateFailed, s.state(2))
	require.Equal(t, int32(2), s.job(2).tries)

	// A permanent failure is total at once, tries left or not.
	s.fail(3, "bad input", true)
	require.Equal(t, jobstore.StateFailed, s.state(3))
	require.Equal(t, int32(1), s.job(3).tries)
	require.Equal(t, 0, s.g.backoff.Len())
	require.Equal(t, []JobID{2, 3}, s.g.failedOwn)
	require.Equal(t, jobstore.StatusFailed, s.outcome())
	require.Equal(t, "failed: a successor failed", s.g.why(1))
}

// A success after failures forgets the failure, so a later leader does
// not hold the job back.
func TestSuccessAfterRetryClearsBackoff(t *testing.T) {
	s := newSched(t, map[JobID]jobEdges{1: {children: []JobID{2}}, 2: {children: []JobID{3}}})
	s.drain()
	s.succeed(1)
	s.drain()
	s.fail(2, "flaky", false)
	s.advance(2 * time.Second)
	s.drain()
	s.succeed(2)
	j := s.job(2)
	require.Equal(t, jobstore.StateChildren, j.state)
	require.Empty(t, j.extra().lastError)
	require.Zero(t, j.extra().notBefore)
	var rec jobstore.Job
	j.record(&rec)
	require.Zero(t, rec.NotBefore)
	require.Empty(t, rec.LastError)
	require.Equal(t, 1, rec.Tries, "tries are kept")
}

func TestBackoffHeapOrder(t *testing.T) {
	s := newSched(t, map[JobID]jobEdges{1: {children: []JobID{2, 3, 4}}})
	s.drain()
	s.succeed(1)
	require.Equal(t, []JobID{2, 3, 4}, s.drain())
	s.fail(2, "x", false) // due at +2s
	s.advance(500 * time.Millisecond)
	s.fail(4, "x", false) // due at +2.5s
	s.advance(100 * time.Millisecond)
	s.fail(3, "x", false) // due at +2.6s
	require.Equal(t, 3, s.g.backoff.Len())
	require.Equal(t, 50*time.Millisecond, s.advance(1950*time.Millisecond)) // at +2.55s
	require.Equal(t, []JobID{2, 4}, s.drain(), "due jobs, earliest first")
	require.Equal(t, time.Duration(0), s.advance(50*time.Millisecond))
	require.Equal(t, []JobID{3}, s.drain())
}

// Exponential backoff must not overflow into a negative wait: the 22nd
// retry of a job with the default 2 s and factor 3 waits 2·3^21 s, more
// than a time.Duration holds.
func TestBackoffDoesNotOverflow(t *testing.T) {
	s := newSched(t, map[JobID]jobEdges{1: {retries: 40}})
	s.drain()
	prev := time.Duration(0)
	for i := range 40 {
		now := s.clock
		s.fail(1, "again", false)
		j := s.job(1)
		b, nb := j.extra().backoff, j.extra().notBefore
		require.GreaterOrEqual(t, b, prev, "failure %d: the backoff never shrinks", i+1)
		require.LessOrEqual(t, b, time.Hour, "failure %d: the backoff is capped", i+1)
		require.Greater(t, nb, now.UnixNano(), "failure %d: the retry waits", i+1)
		prev = b
		// Jump to when the job is due and issue it again.
		s.clock = time.Unix(0, nb)
		s.g.promoteBackoff()
		require.Equal(t, []JobID{1}, s.drain())
	}
}

// A job that fails totally skips the successors it never reached; its
// predecessor notes the failure and fails once its phase settles, and
// the failure climbs to the root.
func TestTotalFailureSkipsAndClimbs(t *testing.T) {
	// 1 ─c→ 2, 3; 1 ─f→ 4. 2 ─c→ 5 ─c→ 7; 2 ─f→ 6.
	s := newSched(t, map[JobID]jobEdges{
		1: {children: []JobID{2, 3}, followOns: []JobID{4}},
		2: {children: []JobID{5}, followOns: []JobID{6}},
		5: {children: []JobID{7}},
	})
	s.setRetries(2, 0) // no retries
	s.drain()
	s.succeed(1)
	require.Equal(t, []JobID{2, 3}, s.drain())

	s.fail(2, "boom", false)
	require.Equal(t, jobstore.StateFailed, s.state(2))
	for _, id := range []JobID{5, 6, 7} {
		require.Equal(t, jobstore.StateSkipped, s.state(id), "job %d", id)
		require.Equal(t, JobID(2), s.job(id).extra().cause)
		require.Equal(t, "will not run: predecessor j2 failed", s.g.why(id))
	}
	require.Equal(t, 3, s.g.skipped)
	r := s.job(1)
	require.True(t, r.failedSucc)
	require.Equal(t, jobstore.StateChildren, r.state, "the root waits for its other child")
	require.Equal(t, int32(1), r.pending)
	require.Equal(t, "body done; waiting for 1 child subtree(s)", s.g.why(1))
	require.NotEqual(t, jobstore.StatusFailed, s.outcome())
	require.Equal(t, jobstore.StatePending, s.state(4), "the follow-on is not skipped yet")

	s.succeed(3)
	require.Nil(t, s.g.jobs.get(3), "a done subtree leaves memory")
	require.Equal(t, "done (or never existed)", s.g.why(3))
	require.Equal(t, jobstore.StateFailed, s.state(1))
	require.Equal(t, jobstore.StatusFailed, s.outcome())
	require.Equal(t, "failed: a successor failed", s.g.why(1))
	require.Equal(t, jobstore.StateSkipped, s.state(4), "the root's follow-on never runs")
	require.Equal(t, JobID(1), s.job(4).extra().cause)
	require.Equal(t, 4, s.g.skipped)
	require.Equal(t, []JobID{2}, s.g.failedOwn, "only the job that failed by its own error is listed")
	require.Empty(t, s.drain())
	require.Contains(t, s.st.deleted, JobID(3))
	require.Contains(t, s.st.written, JobID(1), "the failed root is written")
}

// A join already reached by one predecessor is skipped when the other
// fails before reaching it; the predecessor that reached it fails too.
func TestSkippedJoinFailsThePredecessorThatReachedIt(t *testing.T) {
	// 1 ─c→ 2, 3; 2 ─c→ 4; 3 ─c→ 4.
	s := newSched(t, map[JobID]jobEdges{1: {children: []JobID{2, 3}}, 2: {children: []JobID{4}}, 3: {children: []JobID{4}}})
	s.setRetries(2, 0)
	s.drain()
	s.succeed(1)
	s.drain()
	s.succeed(3)
	require.Equal(t, jobstore.StateChildren, s.state(3))
	require.Equal(t, int32(1), s.job(4).reached)
	require.Equal(t, "waiting for 1 of 2 predecessor(s): [test.kind (j2)]", s.g.why(4))

	s.fail(2, "boom", false)
	require.Equal(t, jobstore.StateSkipped, s.state(4))
	require.Equal(t, jobstore.StateFailed, s.state(3), "it waited for the join, which will never run")
	require.Empty(t, s.job(3).extra().lastError)
	require.Equal(t, jobstore.StateFailed, s.state(1))
	require.Equal(t, jobstore.StatusFailed, s.outcome())
	require.Equal(t, 1, s.g.skipped)
	require.Equal(t, []JobID{2}, s.g.failedOwn)
}

func TestJoinIsReadyOnlyWhenEveryPredecessorReachedIt(t *testing.T) {
	// 1 ─c→ 2, 3; 2 ─c→ 4, 2 ─f→ 5; 3 ─c→ 5. 5 joins 2's follow-on
	// phase and 3's child phase.
	s := newSched(t, map[JobID]jobEdges{
		1: {children: []JobID{2, 3}},
		2: {children: []JobID{4}, followOns: []JobID{5}},
		3: {children: []JobID{5}},
	})
	require.Equal(t, []JobID{1}, s.drain())
	require.Equal(t, "issued to the batch system", s.g.why(1))
	require.Equal(t, "waiting for 1 of 1 predecessor(s): [test.kind (j1)]", s.g.why(2))
	s.succeed(1)
	require.Equal(t, "ready; waiting for room in the batch system (Config.MaxIssued)", s.g.why(2))
	require.Equal(t, []JobID{2, 3}, s.drain())

	s.succeed(3) // reaches 5: 1 of 2
	require.Empty(t, s.drain())
	require.Equal(t, int32(1), s.job(5).reached)
	require.Equal(t, "waiting for 1 of 2 predecessor(s): [test.kind (j2)]", s.g.why(5))

	s.succeed(2) // reaches 4 only: 5 is its follow-on
	require.Equal(t, []JobID{4}, s.drain())
	require.Equal(t, int32(1), s.job(5).reached)
	require.Equal(t, "waiting for 1 of 2 predecessor(s): [test.kind (j2)]", s.g.why(5), "2 has not reached its follow-ons yet")

	s.succeed(4) // 2's children done: its follow-on phase reaches 5
	require.Equal(t, jobstore.StateFollowOns, s.state(2))
	require.Equal(t, "children done; waiting for 1 follow-on subtree(s)", s.g.why(2))
	require.Equal(t, []JobID{5}, s.drain())

	s.succeed(5)
	require.Nil(t, s.g.jobs.get(2))
	require.Nil(t, s.g.jobs.get(3))
	require.Equal(t, jobstore.StatusSucceeded, s.outcome())
	require.Equal(t, jobstore.StateDone, s.job(1).state, "the root's record is kept")
	require.Equal(t, "done", s.g.why(1))
	require.ElementsMatch(t, []JobID{2, 3, 4, 5}, s.st.deleted)
}

// derive, run on the records the live transitions leave, must rebuild the
// same scheduling state: a leader that restarts at any point carries on
// where the last one was.
func TestDeriveMatchesLiveTransitions(t *testing.T) {
	spec := map[JobID]jobEdges{
		1: {children: []JobID{2, 3, 4}, followOns: []JobID{5}},
		2: {children: []JobID{6}, followOns: []JobID{7}},
		3: {children: []JobID{7}},
		4: {children: []JobID{8}},
		8: {children: []JobID{9}},
	}
	setup := func(s *sched) { s.setRetries(8, 0) }
	type step struct {
		name string
		do   func(s *sched)
	}
	expect := func(s *sched, got, want []JobID) {
		if s.strict {
			require.Equal(s.t, want, got)
		}
	}
	script := []step{
		{"issue root", func(s *sched) { expect(s, s.drain(), []JobID{1}) }},
		{"root body done", func(s *sched) { s.succeed(1) }},
		{"issue children", func(s *sched) { expect(s, s.drain(), []JobID{2, 3, 4}) }},
		{"2 done", func(s *sched) { s.succeed(2) }},
		{"3 done: join half reached", func(s *sched) { s.succeed(3) }},
		{"4 done", func(s *sched) { s.succeed(4) }},
		{"issue 6 and 8", func(s *sched) { expect(s, s.drain(), []JobID{6, 8}) }},
		{"6 fails once: backoff", func(s *sched) { s.fail(6, "flaky", false) }},
		{"8 fails totally: 9 skipped, 4 fails", func(s *sched) { s.fail(8, "broken", false) }},
		{"backoff passes", func(s *sched) { s.advance(2 * time.Second); expect(s, s.drain(), []JobID{6}) }},
		{"6 done: 2's follow-on reaches the join", func(s *sched) { s.succeed(6) }},
		{"issue the join", func(s *sched) { expect(s, s.drain(), []JobID{7}) }},
		{"join done: the root fails", func(s *sched) { s.succeed(7) }},
	}

	// The whole run, for reference.
	full := newSched(t, spec)
	setup(full)
	for _, st := range script {
		st.do(full)
	}
	require.Equal(t, jobstore.StatusFailed, full.outcome())
	require.Equal(t, []JobID{8}, full.g.failedOwn)
	require.Equal(t, 2, full.g.skipped, "9, and the root's follow-on 5")

	for k := 0; k <= len(script); k++ {
		name := "start"
		if k > 0 {
			name = script[k-1].name
		}
		t.Run(fmt.Sprintf("%02d %s", k, name), func(t *testing.T) {
			s := newSched(t, spec)
			setup(s)
			for _, st := range script[:k] {
				st.do(s)
			}
			r := reload(t, s)
			requireSameScheduling(t, s, r)

			// The reloaded graph finishes the same way. A new leader
			// issues whatever is ready, including what the old one had
			// issued.
			r.drain()
			r.strict = false
			for _, st := range script[k:] {
				st.do(r)
			}
			require.Equal(t, full.outcome(), r.outcome())
			require.Equal(t, full.g.failedOwn, sortedIDs(r.g.failedOwn))
			require.Equal(t, full.g.skipped, r.g.skipped)
			require.Equal(t, full.g.jobs.len(), r.g.jobs.len())
		})
	}
}

// reload loads the records the plans wrote into a new graph, as a
// restarted leader's load does. The store and the live graph must agree:
// every live job's record is what its memory says.
func reload(t *testing.T, s *sched) *sched {
	r, settled, _, _ := load(t, s)
	require.Empty(t, settled, "no phase is left settled but unfinished")
	return r
}

// load is the leader's load on s's records, up to graph.reload.
func load(t *testing.T, s *sched) (r *sched, settled, restart, failed []*ljob) {
	return loadThen(t, s, nil)
}

// loadThen is load with fn run on the loaded graph before reload, as the
// leader restarts a failed workflow there.
func loadThen(t *testing.T, s *sched, fn func(*graph)) (r *sched, settled, restart, failed []*ljob) {
	t.Helper()
	return loadWith(t, s, nil, fn)
}

// loadWith is loadThen by a leader whose route table is routes (nil: one
// batch system).
func loadWith(t *testing.T, s *sched, routes func(*routeTable), fn func(*graph)) (r *sched, settled, restart, failed []*ljob) {
	t.Helper()
	s.step()
	require.Equal(t, s.g.jobs.len(), len(s.st.records), "one record per live job")
	for id, j := range s.g.jobs.all() {
		require.Equal(t, copyRecord(s.g, j), s.st.records[id], "the record of %d is what memory says", id)
	}
	r = &sched{t: t, g: defaultGraph(t), clock: s.clock, strict: true, st: s.st, adds: map[JobID]*added{}}
	s.st.deleted, s.st.written = nil, map[JobID]bool{}
	r.g.now = func() time.Time { return r.clock }
	r.g.root, r.g.epoch, r.g.nextID = s.g.root, s.g.epoch+1, s.st.next
	if routes != nil {
		routes(&r.g.routes)
	}
	for _, id := range slices.Sorted(maps.Keys(s.st.records)) {
		rec := s.st.records[id]
		j, ok := r.g.fromRecord(&rec)
		require.True(t, ok)
		r.g.add(j)
	}
	reads := map[JobID][]byte{}
	for id, rec := range s.st.records {
		if mayRead(&rec) {
			reads[id] = s.st.inputs[id]
		}
	}
	r.g.reloadReads(reads)
	if fn != nil {
		fn(r.g)
	}
	settled, restart, failed = r.g.reload()
	return r, settled, restart, failed
}

func requireSameScheduling(t *testing.T, live, derived *sched) {
	t.Helper()
	where := func(s *sched, w ...where) []JobID {
		var out []JobID
		for id, j := range s.g.jobs.all() {
			if j.state == jobstore.StatePending && slices.Contains(w, j.where) {
				out = append(out, id)
			}
		}
		return sortedIDs(out)
	}
	// What the live leader has ready or issued, the new one has ready.
	require.Equal(t, where(live, inReady, isIssued), where(derived, inReady), "ready")
	require.Equal(t, where(live, inBackoff), where(derived, inBackoff), "in backoff")
	require.Equal(t, where(live, nowhere), where(derived, nowhere), "waiting for predecessors")
	require.Equal(t, derived.g.readyLen(), len(where(derived, inReady)), "each ready job queued once")

	require.Equal(t, live.g.jobs.len(), derived.g.jobs.len())
	for id, lj := range live.g.jobs.all() {
		dj := derived.g.jobs.get(id)
		require.NotNil(t, dj)
		require.Equal(t, lj.state, dj.state, "state of %d", id)
		require.Equal(t, lj.tries, dj.tries, "tries of %d", id)
		require.Equal(t, *lj.extra(), *dj.extra(), "extra of %d", id)
		switch lj.state {
		case jobstore.StatePending:
			require.Equal(t, lj.reached, dj.reached, "reached of %d", id)
		case jobstore.StateChildren, jobstore.StateFollowOns:
			require.Equal(t, lj.pending, dj.pending, "pending of %d", id)
			require.Equal(t, lj.failedSucc, dj.failedSucc, "failedSucc of %d", id)
		}
	}
	require.Equal(t, live.outcome(), derived.outcome())
	require.Equal(t, live.g.skipped, derived.g.skipped)
	require.Equal(t, sortedIDs(live.g.failedOwn), sortedIDs(derived.g.failedOwn))
}

// A job whose backoff outlives its leader waits it out under the next.
func TestDeriveHonoursNotBefore(t *testing.T) {
	s := newSched(t, map[JobID]jobEdges{1: {children: []JobID{2}}, 2: {retries: 3}})
	s.drain()
	s.succeed(1)
	s.drain()
	s.fail(2, "x", false)
	s.clock = s.clock.Add(time.Second)
	r := reload(t, s)
	require.Equal(t, inBackoff, r.job(2).where)
	require.Empty(t, r.drain())
	require.Equal(t, time.Second, r.g.promoteBackoff())
	require.Equal(t, time.Duration(0), r.advance(time.Second))
	require.Equal(t, []JobID{2}, r.drain())
	// The next failure grows the stored backoff.
	r.fail(2, "y", false)
	require.Equal(t, 6*time.Second, r.job(2).extra().backoff)
}

// The ready queue hands out each job once, in order, across its
// compactions.
func TestReadyQueueAcrossCompaction(t *testing.T) {
	g := defaultGraph(t)
	const n = 5000
	jobs := make([]*ljob, n)
	for i := range jobs {
		jobs[i] = &ljob{id: JobID(i + 1), state: jobstore.StatePending, req: &Requirements{}}
		g.jobs.put(jobs[i]) // the queue finds its jobs in the graph
	}
	var got []JobID
	next := 0
	for len(got) < n {
		// Push a few, pop fewer, so the head runs far ahead of the start.
		for k := 0; k < 7 && next < n; k++ {
			g.makeReady(jobs[next])
			g.makeReady(jobs[next]) // queued already: no second entry
			next++
		}
		for k := 0; k < 5; k++ {
			if j := g.popReady(); j != nil {
				got = append(got, j.id)
			}
		}
	}
	require.Nil(t, g.popReady())
	require.Equal(t, 0, g.readyLen())
	for i, id := range got {
		require.Equal(t, JobID(i+1), id)
	}

	// Stale entries (settled meanwhile) are passed over.
	a, b := &ljob{id: 1, state: jobstore.StatePending}, &ljob{id: 2, state: jobstore.StatePending}
	g.jobs.put(a)
	g.jobs.put(b)
	g.makeReady(a)
	g.makeReady(b)
	a.state = jobstore.StateSkipped
	require.Equal(t, b, g.popReady())
	require.Nil(t, g.popReady())
}

func TestWhyNamesEveryWait(t *testing.T) {
	s := newSched(t, map[JobID]jobEdges{1: {children: []JobID{2, 3}}, 2: {children: []JobID{4}}, 3: {children: []JobID{4}}})
	s.edit(3, func(j *ljob) { j.ext().name = "third" })
	require.True(t, strings.HasPrefix(s.g.why(2), "waiting for 1 of 1 predecessor(s)"))
	s.drain()
	s.succeed(1)
	s.drain()
	s.succeed(2)
	require.Equal(t, "waiting for 1 of 2 predecessor(s): [third (j3)]", s.g.why(4))
	s.fail(3, "disk full", false)
	require.Contains(t, s.g.why(3), "in retry backoff until")
	require.Equal(t, "done (or never existed)", s.g.why(99))
}

// A failed workflow restarted: the job that failed runs again with fresh
// tries, the jobs skipped because of it wait for it again, the ancestors
// it failed wait in the phase they failed in, and a failed checkpoint
// runs again from its body, its old subtree gone. What succeeded is not
// redone.
func TestGraphRestartAfterFailure(t *testing.T) {
	// 1 ─c→ 2, 3; 1 ─f→ 4; 2 ─c→ 5; 3 is a checkpoint whose body adds 7.
	s := newSched(t, map[JobID]jobEdges{1: {children: []JobID{2, 3}, followOns: []JobID{4}}, 2: {children: []JobID{5}}})
	s.setRetries(2, 0)
	s.edit(3, func(j *ljob) { j.checkpoint, j.retries = true, 0 })
	s.drain()
	s.succeed(1)
	require.Equal(t, []JobID{2, 3}, s.drain())
	s.addChildJob(3, 7)
	s.succeed(3)
	s.setRetries(7, 0)
	require.Equal(t, []JobID{7}, s.drain())
	s.fail(7, "seven", false)
	require.Equal(t, jobstore.StateFailed, s.state(3), "no tries left to restart the checkpoint")
	s.fail(2, "two", false)
	require.Equal(t, jobstore.StatusFailed, s.outcome())
	require.Equal(t, jobstore.StateSkipped, s.state(5))
	require.Equal(t, jobstore.StateSkipped, s.state(4))

	var again int
	r, settled, _, _ := loadThen(t, s, func(g *graph) { again = g.restart() })
	require.Empty(t, settled)
	require.Equal(t, 5, again, "1 to 5; 7 goes with its checkpoint's subtree")
	require.Equal(t, jobstore.StatusRunning, r.outcome())
	require.Nil(t, r.g.jobs.get(7), "the checkpoint's old subtree is gone")
	require.Equal(t, jobstore.StateChildren, r.state(1), "it waits for its children again")
	require.Equal(t, jobstore.StatePending, r.state(4), "the follow-on waits for the children")
	require.Equal(t, jobstore.StatePending, r.state(5))
	require.Equal(t, int32(0), r.job(2).tries, "a fresh budget")
	require.Empty(t, r.g.failedOwn)
	require.Zero(t, r.g.skipped)
	require.Equal(t, []JobID{2, 3}, sortedIDs(r.drain()), "the failed job and the checkpoint run again; the root does not")
	r.succeed(2)
	r.succeed(3)
	require.Equal(t, []JobID{5}, r.drain())
	r.succeed(5)
	require.Equal(t, []JobID{4}, r.drain())
	r.succeed(4)
	require.Equal(t, jobstore.StatusSucceeded, r.outcome())
}
