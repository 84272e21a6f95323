package gaffer

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/jobstore"
)

var routeNames = []string{"inproc", "procs", "slurm"}

// byShape is a rule by what the tests give jobs: a name, a category,
// requirements; "" leaves the choice to the job.
func byShape(info RouteInfo) string {
	switch {
	case info.Requirements.Cores >= 4:
		return "slurm"
	case info.Name == "big":
		return "procs"
	case len(info.Categories) > 0 && info.Categories[0] == "odd":
		return "nowhere"
	case info.Name == "boom":
		panic("the rule broke")
	}
	return ""
}

// routeDrain issues every ready job as the leader's issue does: routed
// first (a refusal fails it for good), then issued with IDs that each
// batch system numbers from 1, so that IDs collide across them. It
// returns the refusals by job.
func routeDrain(s *sched, ids map[uint8]batchsystem.ID) map[JobID]string {
	s.step()
	refused := map[JobID]string{}
	for {
		batch := s.g.pickIssue(s.g.issueRoom(-1, -1))
		if len(batch) == 0 {
			break
		}
		for _, j := range batch {
			if msg := s.g.route(j, *j.req); msg != "" {
				refused[j.id] = msg
				s.g.issueFailed(j, msg, true)
				continue
			}
			s.g.newAttempt(j)
			ids[j.route]++
			s.g.issuedAs(j, ids[j.route], "")
		}
	}
	s.apply()
	return refused
}

func TestRouteChosenOnceRecordedAndKept(t *testing.T) {
	s := newSched(t, map[JobID]jobEdges{1: {children: []JobID{2, 3, 4, 5, 6}}, 2: {retries: 3}})
	s.g.routes.configure(routeNames, byShape)
	s.edit(1, func(j *ljob) { j.ext().target = "inproc" })
	s.edit(2, func(j *ljob) { j.ext().name = "big" })
	s.edit(3, func(j *ljob) { j.req = s.g.shareReq(Requirements{Cores: 8}) })
	s.edit(4, func(j *ljob) { j.ext().categories = "odd" })
	s.edit(6, func(j *ljob) { j.ext().name = "boom" })

	ids := map[uint8]batchsystem.ID{}
	require.Empty(t, routeDrain(s, ids))
	require.Equal(t, "inproc", s.st.records[1].BatchSystem, "the rule left it to the job's RunOn; the choice is in the record")
	require.Equal(t, "inproc", s.st.records[1].Target)
	s.succeed(1)

	refused := routeDrain(s, ids)
	require.Equal(t, "procs", s.st.records[2].BatchSystem)
	require.Equal(t, "slurm", s.st.records[3].BatchSystem)
	require.Equal(t, batchsystem.ID(1), s.job(2).bsID)
	require.Equal(t, batchsystem.ID(1), s.job(3).bsID, "each batch system numbers its own jobs")
	require.Len(t, s.g.issued, 2, "the same ID on two batch systems is two attempts")
	require.Equal(t, `issued to batch system "procs"`, s.g.why(2))
	require.Equal(t, `issued to batch system "slurm"`, s.g.why(3))

	// Refused for good, each with the job, the choice and why.
	require.Len(t, refused, 3)
	require.Equal(t, `job test.kind (j4): Config.Route chose batch system "nowhere", which is not one of Config.BatchSystems ("inproc", "procs", "slurm")`, refused[4])
	require.Equal(t, `job test.kind (j5): no batch system: Config.Route chose none ("") and the job asked for none (RunOn); Config.BatchSystems has "inproc", "procs", "slurm"`, refused[5])
	require.Equal(t, `job boom (j6): Config.Route panicked: the rule broke`, refused[6])
	for id := range refused {
		require.Equal(t, jobstore.StateFailed, s.state(id))
		require.Equal(t, int32(1), s.job(id).tries, "permanent: no retry")
		require.Empty(t, s.st.records[id].BatchSystem)
	}

	// A retry keeps the batch system, whatever the rule says now.
	s.g.routes.rule = func(RouteInfo) string { return "inproc" }
	s.fail(2, "flaky", false)
	require.Contains(t, s.g.why(2), `; it runs on batch system "procs"`)
	s.advance(2 * time.Second)
	require.Empty(t, routeDrain(s, ids))
	require.Equal(t, "procs", s.g.routes.name(s.job(2).route))
	require.Equal(t, batchsystem.ID(2), s.job(2).bsID)

	// A later leader, with another rule and its batch systems in another
	// order, keeps every recorded choice.
	r, _, _, _ := loadWith(t, s, func(rt *routeTable) {
		rt.configure([]string{"slurm", "procs", "inproc", "extra"}, func(RouteInfo) string { return "extra" })
	}, nil)
	require.NoError(t, r.g.missingRoute())
	for id, want := range map[JobID]string{1: "inproc", 2: "procs", 3: "slurm"} {
		require.Equal(t, want, r.g.routes.name(r.job(id).route), "job %d", id)
	}
	ids = map[uint8]batchsystem.ID{}
	require.Empty(t, routeDrain(r, ids), "failed jobs are not issued again")
	require.Equal(t, `issued to batch system "procs"`, r.g.why(2))
	require.Equal(t, "procs", r.st.records[2].BatchSystem)
}

// A stored route the leader has no batch system for stops the resume,
// naming a job and the name, with one batch system or several; a job that
// will not run again does not need it.
func TestRouteMissingOnResume(t *testing.T) {
	s := newSched(t, map[JobID]jobEdges{1: {children: []JobID{2, 3}}})
	s.g.routes.configure(routeNames, func(info RouteInfo) string {
		if info.Job == 3 {
			return "slurm"
		}
		return "inproc"
	})
	routeDrain(s, map[uint8]batchsystem.ID{})
	s.succeed(1) // j1 waits for its children: it will not run again
	routeDrain(s, map[uint8]batchsystem.ID{})
	require.Equal(t, "slurm", s.st.records[3].BatchSystem)

	r, _, _, _ := loadWith(t, s, func(rt *routeTable) { rt.configure([]string{"procs", "slurm"}, nil) }, nil)
	require.EqualError(t, r.g.missingRoute(), `gaffer: job test.kind (j2) was routed to batch system "inproc", `+
		`which this leader does not have (Config.BatchSystems has "procs", "slurm"); a job keeps its batch system for life: give the leader one of that name`)

	r, _, _, _ = loadWith(t, s, func(rt *routeTable) { rt.configure(nil, nil) }, nil)
	err := r.g.missingRoute()
	require.Error(t, err)
	require.Contains(t, err.Error(), "this leader has one batch system (Config.BatchSystem)")

	// Tools that read a store take every name.
	r, _, _, _ = loadWith(t, s, nil, nil)
	require.NoError(t, r.g.missingRoute())
	require.Equal(t, "slurm", r.g.routes.name(r.job(3).route))
}

// Rescue asks each batch system about its own jobs: a job missing from
// one batch system's list is not missing because another has an attempt
// with its ID.
func TestRescuePerBatchSystem(t *testing.T) {
	s := newSched(t, map[JobID]jobEdges{1: {children: []JobID{2, 3}}})
	s.g.routes.configure(routeNames, func(info RouteInfo) string {
		if info.Job == 3 {
			return "slurm"
		}
		return "procs"
	})
	ids := map[uint8]batchsystem.ID{}
	routeDrain(s, ids)
	s.succeed(1)
	routeDrain(s, ids)
	procs, slurm := s.g.routes.index["procs"], s.g.routes.index["slurm"]
	require.Equal(t, batchsystem.ID(2), s.job(2).bsID)
	// j3 is slurm's job 1; procs lists its job 2 (j2), and slurm lists nothing.
	for range 3 {
		require.Empty(t, s.g.rescue(procs, []batchsystem.ID{2}, nil, 3, 0))
	}
	var lost []event
	for range 3 {
		lost = s.g.rescue(slurm, []batchsystem.ID{2}, nil, 3, 0)
	}
	require.Len(t, lost, 1)
	require.Equal(t, JobID(3), lost[0].j.id)
	p := s.g.take()
	require.Equal(t, []attempt{{job: 3, epoch: 1, seq: 3, bs: 1, route: slurm}}, p.kill, "killed on its own batch system")
	require.Equal(t, "slurm", p.attempts[0].BatchSystem, "the attempt record names it")
	require.True(t, s.g.isIssued(s.g.attemptOf(s.job(2))))
}
