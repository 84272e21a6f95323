package simcluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/batchsystem/batchsystemtest"
	"github.com/gafferhq/gaffer/scaler"
	"github.com/gafferhq/gaffer/scaler/provisionertest"
)

const gb = 1_000_000_000

var (
	small = scaler.NodeType{Name: "small", Shape: scaler.Shape{Memory: 8 * gb, Cores: 2, Disk: 100 * gb}, PricePerHour: 0.1}
	spot  = scaler.NodeType{Name: "spot", Shape: scaler.Shape{Memory: 32 * gb, Cores: 8, Disk: 100 * gb, Preemptible: true}, PricePerHour: 0.05}
)

func minute(batchsystem.JobSpec) time.Duration { return time.Minute }

func newCluster(t *testing.T, cfg Config) *Cluster {
	t.Helper()
	if cfg.NodeTypes == nil {
		cfg.NodeTypes = []scaler.NodeType{small, spot}
	}
	if cfg.Runtime == nil {
		cfg.Runtime = minute
	}
	c, err := New(cfg)
	require.NoError(t, err)
	return c
}

func spec(name string, cores float64) batchsystem.JobSpec {
	return batchsystem.JobSpec{JobID: name, Name: name, Kind: "k", Attempt: 1,
		Requirements: batchsystem.Requirements{Cores: cores, Memory: gb, Disk: gb}}
}

func TestBatchSystemConformance(t *testing.T) {
	batchsystemtest.Run(t, batchsystemtest.Config{
		New: func(t *testing.T) batchsystem.BatchSystem {
			return newCluster(t, Config{
				StaticNodes: map[string]int{"small": 1},
				Runtime: func(s batchsystem.JobSpec) time.Duration {
					if s.Name == "long" {
						return 1000 * time.Hour
					}
					return time.Second
				},
			})
		},
	})
}

func TestProvisionerConformance(t *testing.T) {
	provisionertest.Run(t, func(t *testing.T) scaler.Provisioner { return newCluster(t, Config{}) })
	provisionertest.Run(t, func(t *testing.T) scaler.Provisioner {
		return newCluster(t, Config{BootTime: time.Minute, StaticNodes: map[string]int{"spot": 2}})
	})
}

func TestNewRejectsBadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no runtime":    {NodeTypes: []scaler.NodeType{small}},
		"no types":      {Runtime: minute},
		"zero cores":    {Runtime: minute, NodeTypes: []scaler.NodeType{{Name: "x", Shape: scaler.Shape{Memory: gb}}}},
		"bad static":    {Runtime: minute, NodeTypes: []scaler.NodeType{small}, StaticNodes: map[string]int{"nope": 1}},
		"twice":         {Runtime: minute, NodeTypes: []scaler.NodeType{small, small}},
		"boot negative": {Runtime: minute, NodeTypes: []scaler.NodeType{small}, BootTime: -1},
	} {
		_, err := New(cfg)
		require.ErrorIs(t, err, ErrBadConfig, name)
	}
}

func TestWaitFinishedJumpsToTheNextEventInVirtualTime(t *testing.T) {
	c := newCluster(t, Config{StaticNodes: map[string]int{"small": 1}})
	ctx := t.Context()
	t0 := c.Now()
	id, err := c.Issue(ctx, spec("a", 1))
	require.NoError(t, err)

	f, err := c.WaitFinished(ctx, 10*time.Second)
	require.NoError(t, err)
	require.Nil(t, f, "the job needs a minute")
	require.Equal(t, 10*time.Second, c.Now().Sub(t0), "no event: the clock moves by maxWait")

	f, err = c.WaitFinished(ctx, 24*time.Hour)
	require.NoError(t, err)
	require.NotNil(t, f)
	require.Equal(t, id, f.ID)
	require.Equal(t, batchsystem.Finished, f.Reason)
	require.Equal(t, time.Minute, f.WallTime)
	require.Equal(t, time.Minute, c.Now().Sub(t0), "the clock stops at the event, not at maxWait")
}

func TestJobsWaitForRoomAndRunInIssueOrder(t *testing.T) {
	c := newCluster(t, Config{StaticNodes: map[string]int{"small": 1}}) // 2 cores
	ctx := t.Context()
	var ids []batchsystem.ID
	for _, s := range []batchsystem.JobSpec{spec("a", 2), spec("b", 1), spec("c", 1)} {
		id, err := c.Issue(ctx, s)
		require.NoError(t, err)
		ids = append(ids, id)
	}
	running, err := c.Running(ctx)
	require.NoError(t, err)
	require.Equal(t, []batchsystem.ID{ids[0]}, keys(running))
	f, err := c.WaitFinished(ctx, time.Hour)
	require.NoError(t, err)
	require.Equal(t, ids[0], f.ID)
	running, err = c.Running(ctx)
	require.NoError(t, err)
	require.ElementsMatch(t, ids[1:], keys(running), "both 1-core jobs share the node next")
	require.Empty(t, c.SchedulingStatus(ids[1]), "running jobs have no scheduling status")
}

func keys(m map[batchsystem.ID]time.Duration) []batchsystem.ID {
	var out []batchsystem.ID
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestNonPreemptibleJobsNeverRunOnPreemptibleNodes(t *testing.T) {
	c := newCluster(t, Config{StaticNodes: map[string]int{"spot": 1}})
	ctx := t.Context()
	id, err := c.Issue(ctx, spec("demand", 1))
	require.NoError(t, err)
	f, err := c.WaitFinished(ctx, time.Hour)
	require.NoError(t, err)
	require.Nil(t, f, "only a spot node is up")
	require.Contains(t, c.SchedulingStatus(id), "waiting")

	pre := spec("pre", 1)
	pre.Requirements.Preemptible = true
	pid, err := c.Issue(ctx, pre)
	require.NoError(t, err)
	f, err = c.WaitFinished(ctx, time.Hour)
	require.NoError(t, err)
	require.Equal(t, pid, f.ID)
}

func TestIssueRefusesJobsNoNodeTypeCanRun(t *testing.T) {
	c := newCluster(t, Config{NodeTypes: []scaler.NodeType{small, spot}})
	ctx := t.Context()
	_, err := c.Issue(ctx, spec("huge", 4)) // 4 cores: only spot has them, and the job is not preemptible
	var ire *batchsystem.InsufficientResourcesError
	require.ErrorAs(t, err, &ire)
	require.Equal(t, "cores", ire.Resource)
	gpu := spec("gpu", 1)
	gpu.Requirements.Accelerators = []batchsystem.Accelerator{{Kind: "gpu"}}
	_, err = c.Issue(ctx, gpu)
	require.ErrorIs(t, err, batchsystem.ErrInsufficientResources)
}

func TestTerminatingABusyNodeLosesItsJobs(t *testing.T) {
	c := newCluster(t, Config{})
	ctx := t.Context()
	n, err := c.AddNodes(ctx, "small", 1)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	id, err := c.Issue(ctx, spec("a", 1))
	require.NoError(t, err)
	nodes, err := c.Nodes(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, nodes[0].Workers)
	require.NoError(t, c.TerminateNodes(ctx, []string{nodes[0].ID}))
	f, err := c.WaitFinished(ctx, 0)
	require.NoError(t, err)
	require.Equal(t, id, f.ID)
	require.Equal(t, batchsystem.Lost, f.Reason)
	require.Equal(t, batchsystem.ExitUnavailable, f.ExitCode)
	f, err = c.WaitFinished(ctx, time.Hour)
	require.NoError(t, err)
	require.Nil(t, f, "reported exactly once")
	require.Equal(t, 1, c.Stats().LostJobs)
}

func TestKilledJobsAreNeverReportedEvenIfAlreadyFinished(t *testing.T) {
	c := newCluster(t, Config{StaticNodes: map[string]int{"small": 1}})
	ctx := t.Context()
	a, err := c.Issue(ctx, spec("a", 1))
	require.NoError(t, err)
	b, err := c.Issue(ctx, spec("b", 1))
	require.NoError(t, err)
	// Both end at the same instant; the first WaitFinished reports one and
	// leaves the other finished but unreported.
	f, err := c.WaitFinished(ctx, time.Hour)
	require.NoError(t, err)
	other := a
	if f.ID == a {
		other = b
	}
	require.NoError(t, c.Kill(ctx, []batchsystem.ID{other}))
	f, err = c.WaitFinished(ctx, time.Hour)
	require.NoError(t, err)
	require.Nil(t, f)
}

func TestDrainedNodesTakeNoNewJobs(t *testing.T) {
	c := newCluster(t, Config{})
	ctx := t.Context()
	_, err := c.AddNodes(ctx, "small", 1)
	require.NoError(t, err)
	nodes, err := c.Nodes(ctx)
	require.NoError(t, err)
	require.NoError(t, c.Drain(ctx, []string{nodes[0].ID}))
	id, err := c.Issue(ctx, spec("a", 1))
	require.NoError(t, err)
	running, err := c.Running(ctx)
	require.NoError(t, err)
	require.Empty(t, running)
	require.NoError(t, c.Undrain(ctx, []string{nodes[0].ID}))
	running, err = c.Running(ctx)
	require.NoError(t, err)
	require.Contains(t, running, id)
}

func TestBootTimeAndCapacity(t *testing.T) {
	c := newCluster(t, Config{BootTime: 5 * time.Minute, Capacity: map[string]int{"spot": 1}})
	ctx := t.Context()
	n, err := c.AddNodes(ctx, "spot", 3)
	require.NoError(t, err)
	require.Equal(t, 1, n, "capacity caps what a type delivers")
	pre := spec("pre", 1)
	pre.Requirements.Preemptible = true
	_, err = c.Issue(ctx, pre)
	require.NoError(t, err)
	nodes, err := c.Nodes(ctx)
	require.NoError(t, err)
	require.Equal(t, scaler.NodeStarting, nodes[0].State)
	f, err := c.WaitFinished(ctx, time.Hour)
	require.NoError(t, err)
	require.Equal(t, time.Minute, f.WallTime)
	require.Equal(t, 6*time.Minute, c.Now().Sub(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)), "boot, then the job")
}

type exit7 struct{}

func (exit7) Error() string { return "seven" }
func (exit7) ExitCode() int { return 7 }

func TestRunIsCalledAtTheEndAndItsErrorIsTheResult(t *testing.T) {
	c := newCluster(t, Config{StaticNodes: map[string]int{"small": 1}})
	ctx := t.Context()
	var at time.Time
	s := spec("a", 1)
	s.Run = func(context.Context) error { at = c.Now(); return exit7{} }
	_, err := c.Issue(ctx, s)
	require.NoError(t, err)
	s2 := spec("b", 1)
	s2.Run = func(context.Context) error { return errors.New("plain") }
	_, err = c.Issue(ctx, s2)
	require.NoError(t, err)
	f, err := c.WaitFinished(ctx, time.Hour)
	require.NoError(t, err)
	require.Equal(t, 7, f.ExitCode)
	require.Equal(t, "seven", f.Message)
	require.Equal(t, time.Minute, at.Sub(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)), "Run sees the virtual end time")
	f, err = c.WaitFinished(ctx, time.Hour)
	require.NoError(t, err)
	require.Equal(t, 1, f.ExitCode)
}

func TestStatsCountNodeHoursAndCost(t *testing.T) {
	c := newCluster(t, Config{})
	ctx := t.Context()
	_, err := c.AddNodes(ctx, "small", 2)
	require.NoError(t, err)
	_, err = c.AddNodes(ctx, "spot", 1)
	require.NoError(t, err)
	_, err = c.WaitFinished(ctx, 30*time.Minute)
	require.NoError(t, err)
	nodes, err := c.Nodes(ctx)
	require.NoError(t, err)
	require.NoError(t, c.TerminateNodes(ctx, []string{nodes[0].ID}))
	_, err = c.WaitFinished(ctx, 30*time.Minute)
	require.NoError(t, err)
	st := c.Stats()
	require.InDelta(t, 1.5, st.NodeHours["small"], 1e-9, "one node 30 min, one 60 min")
	require.InDelta(t, 1.0, st.NodeHours["spot"], 1e-9)
	require.InDelta(t, 1.5*0.1+1.0*0.05, st.Cost, 1e-9)
	require.Equal(t, 2, st.MaxNodes["small"])
	require.Equal(t, 150*time.Minute, st.WorkerTime)
	tl := c.Timeline()
	require.Equal(t, 2, tl[0].Nodes["small"])
	require.Equal(t, 1, tl[len(tl)-1].Nodes["small"])
}
