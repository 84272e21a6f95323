package gaffer

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/jobstore"
)

// sched drives a graph the way the leader does, without a store or a
// batch system, on a clock the test moves.
type sched struct {
	t      *testing.T
	g      *graph
	clock  time.Time
	strict bool // check that succeed and fail are given issued jobs
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

// newSched makes a fresh workflow rooted at job 1 from spec, the way the
// leader's open does: jobs built as ingest builds them, then derive.
func newSched(t *testing.T, spec map[JobID]jobEdges) *sched {
	s := &sched{t: t, g: defaultGraph(t), clock: testEpoch, strict: true}
	s.g.now = func() time.Time { return s.clock }
	g := s.g
	req := g.shareReq(Requirements{Cores: 0.1})
	get := func(id JobID) *ljob {
		j := g.jobs[id]
		if j == nil {
			j = &ljob{id: id, kind: g.intern("test.kind"), state: jobstore.StatePending, req: req, retries: -1}
			g.jobs[id] = j
		}
		return j
	}
	ids := make([]JobID, 0, len(spec))
	for id := range spec {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		e := spec[id]
		p := get(id)
		if e.retries != 0 {
			p.retries = e.retries
		}
		for _, c := range e.children {
			p.addChild(c)
			get(c).preds = append(get(c).preds, id)
		}
		for _, f := range e.followOns {
			p.addFollowOn(f)
			get(f).preds = append(get(f).preds, id)
		}
	}
	g.root = 1
	require.Empty(t, g.derive())
	return s
}

func (s *sched) job(id JobID) *ljob {
	s.t.Helper()
	j := s.g.jobs[id]
	require.NotNil(s.t, j, "job %d is live", id)
	return j
}

// drain issues every ready job and returns their IDs in queue order.
func (s *sched) drain() []JobID {
	var out []JobID
	for j := s.g.popReady(); j != nil; j = s.g.popReady() {
		j.where = isIssued
		out = append(out, j.id)
	}
	return out
}

func (s *sched) finish(id JobID) *ljob {
	s.t.Helper()
	j := s.job(id)
	if s.strict {
		require.Equal(s.t, isIssued, j.where, "job %d finishes only once issued", id)
	}
	require.Equal(s.t, jobstore.StatePending, j.state)
	j.where = nowhere
	return j
}

func (s *sched) succeed(id JobID) { s.g.bodyDone(s.finish(id)) }

func (s *sched) fail(id JobID, msg string, permanent bool) {
	s.g.attemptFailed(s.finish(id), msg, "tail of "+msg, permanent)
}

func (s *sched) advance(d time.Duration) time.Duration {
	s.clock = s.clock.Add(d)
	return s.g.promoteBackoff()
}

func (s *sched) state(id JobID) jobstore.State {
	if j := s.g.jobs[id]; j != nil {
		return j.state
	}
	return jobstore.StateDone // deleted: its subtree is done
}

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
	require.True(t, s.g.rootFailed)
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
	require.True(t, s.g.rootFailed)
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
	s.job(2).retries = 0 // no retries
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
	require.False(t, s.g.rootFailed)
	require.Equal(t, jobstore.StatePending, s.state(4), "the follow-on is not skipped yet")

	s.succeed(3)
	require.Nil(t, s.g.jobs[3], "a done subtree leaves memory")
	require.Equal(t, "done (or never existed)", s.g.why(3))
	require.Equal(t, jobstore.StateFailed, s.state(1))
	require.True(t, s.g.rootFailed)
	require.Equal(t, "failed: a successor failed", s.g.why(1))
	require.Equal(t, jobstore.StateSkipped, s.state(4), "the root's follow-on never runs")
	require.Equal(t, JobID(1), s.job(4).extra().cause)
	require.Equal(t, 4, s.g.skipped)
	require.Equal(t, []JobID{2}, s.g.failedOwn, "only the job that failed by its own error is listed")
	require.Empty(t, s.drain())
	require.Contains(t, s.g.deleted, JobID(3))
	require.Contains(t, s.g.dirty, JobID(1), "the failed root is written")
}

// A join already reached by one predecessor is skipped when the other
// fails before reaching it; the predecessor that reached it fails too.
func TestSkippedJoinFailsThePredecessorThatReachedIt(t *testing.T) {
	// 1 ─c→ 2, 3; 2 ─c→ 4; 3 ─c→ 4.
	s := newSched(t, map[JobID]jobEdges{1: {children: []JobID{2, 3}}, 2: {children: []JobID{4}}, 3: {children: []JobID{4}}})
	s.job(2).retries = 0
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
	require.True(t, s.g.rootFailed)
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
	require.Nil(t, s.g.jobs[2])
	require.Nil(t, s.g.jobs[3])
	require.True(t, s.g.rootDone)
	require.Equal(t, jobstore.StateDone, s.job(1).state, "the root's record is kept")
	require.Equal(t, "done", s.g.why(1))
	require.ElementsMatch(t, []JobID{2, 3, 4, 5}, s.g.deleted)
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
	setup := func(s *sched) { s.job(8).retries = 0 }
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
	require.True(t, full.g.rootFailed)
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
			require.Equal(t, full.g.rootFailed, r.g.rootFailed)
			require.Equal(t, full.g.rootDone, r.g.rootDone)
			require.Equal(t, full.g.failedOwn, sortedIDs(r.g.failedOwn))
			require.Equal(t, full.g.skipped, r.g.skipped)
			require.Equal(t, len(full.g.jobs), len(r.g.jobs))
		})
	}
}

// reload writes every live job as a record and loads the records into a
// new graph, as a restarted leader does.
func reload(t *testing.T, s *sched) *sched {
	r := &sched{t: t, g: defaultGraph(t), clock: s.clock, strict: true}
	r.g.now = func() time.Time { return r.clock }
	r.g.root = s.g.root
	for id, j := range s.g.jobs {
		var rec jobstore.Job
		j.record(&rec)
		require.Equal(t, id, rec.ID)
		r.g.jobs[id] = r.g.fromRecord(&rec)
	}
	require.Empty(t, r.g.derive(), "no phase is left settled but unfinished")
	return r
}

func requireSameScheduling(t *testing.T, live, derived *sched) {
	t.Helper()
	where := func(s *sched, w ...where) []JobID {
		var out []JobID
		for id, j := range s.g.jobs {
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

	require.Equal(t, len(live.g.jobs), len(derived.g.jobs))
	for id, lj := range live.g.jobs {
		dj := derived.g.jobs[id]
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
	require.Equal(t, live.g.rootDone, derived.g.rootDone)
	require.Equal(t, live.g.rootFailed, derived.g.rootFailed)
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
	g.makeReady(a)
	g.makeReady(b)
	a.state = jobstore.StateSkipped
	require.Equal(t, b, g.popReady())
	require.Nil(t, g.popReady())
}

func TestWhyNamesEveryWait(t *testing.T) {
	s := newSched(t, map[JobID]jobEdges{1: {children: []JobID{2, 3}}, 2: {children: []JobID{4}}, 3: {children: []JobID{4}}})
	s.job(3).ext().name = "third"
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
