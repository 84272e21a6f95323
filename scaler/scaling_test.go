package scaler_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/scaler"
	"github.com/gafferhq/gaffer/scaler/simcluster"
)

const gb = 1_000_000_000

// seeded is a workload that first reports some jobs as completed, as
// Toil's scaling tests feed the scaler 1000 random completed jobs.
type seeded struct {
	scaler.Workload
	first []scaler.CompletedJob
}

func (s *seeded) Completed(ctx context.Context) ([]scaler.CompletedJob, error) {
	done, err := s.Workload.Completed(ctx)
	done, s.first = append(s.first, done...), nil
	return done, err
}

type run struct {
	cluster *simcluster.Cluster
	scaler  *scaler.ClusterScaler
	reports []*scaler.Report
}

func newRun(t *testing.T, sim simcluster.Config, cfg scaler.Config, seed []scaler.CompletedJob) *run {
	t.Helper()
	if sim.Runtime == nil {
		sim.Runtime = func(batchsystem.JobSpec) time.Duration { return 2 * time.Second }
	}
	c, err := simcluster.New(sim)
	require.NoError(t, err)
	cfg.Now = c.Now
	s, err := scaler.New(t.Context(), c, &seeded{c.Workload(), seed}, cfg)
	require.NoError(t, err)
	return &run{cluster: c, scaler: s}
}

func (r *run) issue(t *testing.T, n int, kind string, req batchsystem.Requirements) {
	t.Helper()
	for i := range n {
		_, err := r.cluster.Issue(t.Context(), batchsystem.JobSpec{JobID: fmt.Sprint(kind, i), Name: kind, Kind: kind, Attempt: 1, Requirements: req})
		require.NoError(t, err)
	}
}

// drive runs to the end and checks what every scenario must: every job
// finished, none was lost to a node terminated under it, and the cluster
// is back to zero nodes.
func (r *run) drive(t *testing.T, interval time.Duration, check func(*scaler.Report)) simcluster.Stats {
	t.Helper()
	err := r.cluster.Drive(t.Context(), r.scaler, simcluster.DriveOptions{
		Interval: interval,
		Limit:    7 * 24 * time.Hour,
		OnStep: func(rep *scaler.Report, err error) error {
			r.reports = append(r.reports, rep)
			if check != nil {
				check(rep)
			}
			return err
		},
	})
	require.NoError(t, err)
	nodes, err := r.cluster.Nodes(t.Context())
	require.NoError(t, err)
	require.Empty(t, nodes, "scaled back to zero nodes")
	st := r.cluster.Stats()
	require.Zero(t, st.LostJobs, "no node was terminated with jobs running")
	return st
}

func randomCompleted(r *rand.Rand, n int, max scaler.Shape, kind string) []scaler.CompletedJob {
	out := make([]scaler.CompletedJob, n)
	for i := range out {
		out[i] = scaler.CompletedJob{Kind: kind, WallTime: time.Duration(1+r.IntN(int(max.WallTime/time.Second)-1)) * time.Second,
			Requirements: batchsystem.Requirements{Cores: float64(1 + r.IntN(int(max.Cores)-1)), Memory: 1 + r.Int64N(max.Memory-1), Disk: 1 + r.Int64N(max.Disk-1)}}
	}
	return out
}

func TestScalingOneNodeType(t *testing.T) {
	// Toil's _testClusterScaling: one node type, jobs of a fixed shape
	// taking 2 s, and 1000 random completed jobs of another kind to learn from.
	n := scaler.NodeType{Name: "c4.large", Shape: scaler.Shape{WallTime: time.Hour, Memory: 4 * gb, Cores: 2, Disk: 32 * gb}, PricePerHour: 0.1}
	r := newRun(t, simcluster.Config{NodeTypes: []scaler.NodeType{n}},
		scaler.Config{AssumeZeroOverhead: true, TargetTime: 10 * time.Second, MaxNodes: map[string]int{n.Name: 10}},
		randomCompleted(rand.New(rand.NewPCG(3, 4)), 1000, n.Shape, "testClusterScaling"))
	r.issue(t, 100, "job", batchsystem.Requirements{Cores: 1, Memory: gb, Disk: gb})
	maxSeen := 0
	st := r.drive(t, 3*time.Second, func(rep *scaler.Report) {
		maxSeen = max(maxSeen, rep.Types[0].Desired)
	})
	require.Equal(t, 100, st.TotalJobs)
	require.Positive(t, st.MaxNodes[n.Name])
	require.LessOrEqual(t, st.MaxNodes[n.Name], 10, "never above max nodes")
	require.Positive(t, maxSeen)
	t.Logf("total jobs %d, max workers %v, worker time %s, per job %s", st.TotalJobs, st.MaxNodes, st.WorkerTime, st.WorkerTimePerJob)
}

func TestScalingMultipleNodeTypesNeverUsesALargeNodeForSmallJobs(t *testing.T) {
	// Toil's testClusterScalingMultipleNodeTypes, with its tiny shapes:
	// small and medium jobs must run on small and medium nodes, and the
	// large node type must never be started. The types are given out of
	// order and max nodes for one of them is missing.
	shape := func(mem int64) scaler.Shape {
		return scaler.Shape{WallTime: 20 * time.Second, Memory: mem, Cores: 10, Disk: 10}
	}
	small := scaler.NodeType{Name: "small", Shape: shape(5)}
	medium := scaler.NodeType{Name: "medium", Shape: shape(10)}
	large := scaler.NodeType{Name: "large", Shape: shape(20)}
	// The old Toil test fed 1000 completed jobs of medium shape, 1-9 s.
	rng := rand.New(rand.NewPCG(5, 6))
	var seed []scaler.CompletedJob
	for range 1000 {
		seed = append(seed, scaler.CompletedJob{Kind: "testClusterScaling", WallTime: time.Duration(1+rng.IntN(9)) * time.Second,
			Requirements: batchsystem.Requirements{Cores: 10, Memory: 5 + rng.Int64N(5), Disk: 10}})
	}
	r := newRun(t, simcluster.Config{NodeTypes: []scaler.NodeType{large, small, medium}},
		scaler.Config{AssumeZeroOverhead: true, BetaInertia: 0.9, TargetTime: 20 * time.Second,
			MaxNodes: map[string]int{"large": 10, "small": 10}}, seed)
	r.issue(t, 100, "small", batchsystem.Requirements{Cores: 10, Memory: 5, Disk: 10})
	r.issue(t, 100, "medium", batchsystem.Requirements{Cores: 10, Memory: 10, Disk: 10})
	st := r.drive(t, 3*time.Second, func(rep *scaler.Report) {
		for _, tr := range rep.Types {
			if tr.Type == "large" {
				require.Zero(t, tr.Current, "no large node, ever")
				require.Zero(t, tr.Desired)
			}
		}
	})
	require.Equal(t, 200, st.TotalJobs)
	require.Positive(t, st.MaxNodes["small"])
	require.Positive(t, st.MaxNodes["medium"])
	require.Zero(t, st.MaxNodes["large"])
}

func preemptibleRun(t *testing.T, spotCapacity int, compensation float64) simcluster.Stats {
	od := scaler.NodeType{Name: "m5.xlarge", Shape: scaler.Shape{Memory: 16 * gb, Cores: 4, Disk: 100 * gb}, PricePerHour: 0.192}
	spot := od
	spot.Name, spot.Shape.Preemptible, spot.PricePerHour = "m5.xlarge-spot", true, 0.07
	sim := simcluster.Config{NodeTypes: []scaler.NodeType{od, spot},
		Runtime: func(s batchsystem.JobSpec) time.Duration { return 10 * time.Minute }}
	if spotCapacity > 0 {
		sim.Capacity = map[string]int{spot.Name: spotCapacity}
	}
	r := newRun(t, sim, scaler.Config{PreemptibleCompensation: compensation, DefaultMaxNodes: 20,
		TargetTime: 10 * time.Minute, DefaultRuntime: 10 * time.Minute}, nil)
	r.issue(t, 100, "demand", batchsystem.Requirements{Cores: 1, Memory: 2 * gb, Disk: gb})
	r.issue(t, 100, "spot", batchsystem.Requirements{Cores: 1, Memory: 2 * gb, Disk: gb, Preemptible: true})
	st := r.drive(t, time.Minute, nil)
	require.Equal(t, 200, st.TotalJobs)
	require.Positive(t, st.MaxNodes[od.Name])
	require.Positive(t, st.MaxNodes[spot.Name])
	if spotCapacity > 0 {
		require.LessOrEqual(t, st.MaxNodes[spot.Name], spotCapacity)
	}
	return st
}

func TestScalingPreemptibleAndNonPreemptibleJobs(t *testing.T) {
	st := preemptibleRun(t, 0, 0)
	t.Logf("%+v", st)
}

func TestScalingCompensatesMissingSpotNodesWithOnDemandOnes(t *testing.T) {
	without := preemptibleRun(t, 2, 0)
	with := preemptibleRun(t, 2, 1)
	require.Greater(t, with.MaxNodes["m5.xlarge"], without.MaxNodes["m5.xlarge"], "the deficit is made up on demand")
	require.Less(t, with.Elapsed, without.Elapsed, "so the spot jobs finish sooner")
}

func TestStepDrainsBusyNodesAndTerminatesThemOnlyOnceIdle(t *testing.T) {
	n := scaler.NodeType{Name: "n", Shape: scaler.Shape{Memory: 8 * gb, Cores: 2, Disk: 50 * gb}}
	c, err := simcluster.New(simcluster.Config{NodeTypes: []scaler.NodeType{n},
		Runtime: func(batchsystem.JobSpec) time.Duration { return 10 * time.Minute }})
	require.NoError(t, err)
	ctx := t.Context()
	s, err := scaler.New(ctx, c, &hidden{}, scaler.Config{Now: c.Now}) // the scaler sees no job: it wants 0 nodes
	require.NoError(t, err)
	_, err = c.AddNodes(ctx, "n", 2)
	require.NoError(t, err)
	req := batchsystem.Requirements{Cores: 2, Memory: gb, Disk: gb}
	for range 2 {
		_, err = c.Issue(ctx, batchsystem.JobSpec{Kind: "k", Requirements: req})
		require.NoError(t, err)
	}

	rep, err := s.Step(ctx)
	require.NoError(t, err)
	require.Len(t, rep.Types[0].Drained, 2)
	require.Empty(t, rep.Types[0].Terminated)
	require.Len(t, rep.Kept, 2)
	require.Equal(t, "draining: 1 job(s) still running", rep.Kept[0].Reason)
	require.Len(t, s.Draining(), 2)

	// A new job does not land on a draining node.
	late, err := c.Issue(ctx, batchsystem.JobSpec{Kind: "k", Requirements: req})
	require.NoError(t, err)
	for range 2 {
		f, err := c.WaitFinished(ctx, time.Hour)
		require.NoError(t, err)
		require.Equal(t, batchsystem.Finished, f.Reason)
	}
	running, err := c.Running(ctx)
	require.NoError(t, err)
	require.NotContains(t, running, late)

	rep, err = s.Step(ctx)
	require.NoError(t, err)
	require.Len(t, rep.Types[0].Terminated, 2, "idle now: terminated")
	require.Empty(t, s.Draining())
	require.Zero(t, c.Stats().LostJobs)
}

// hidden is a workload with no jobs.
type hidden struct{ calls atomic.Int64 }

func (h *hidden) Issued(context.Context) ([]scaler.Job, error) {
	h.calls.Add(1)
	return nil, nil
}
func (h *hidden) Completed(context.Context) ([]scaler.CompletedJob, error) { return nil, nil }

func TestScaleUpUndrainsBeforeAdding(t *testing.T) {
	n := scaler.NodeType{Name: "n", Shape: scaler.Shape{Memory: 8 * gb, Cores: 2, Disk: 50 * gb}}
	c, err := simcluster.New(simcluster.Config{NodeTypes: []scaler.NodeType{n},
		Runtime: func(batchsystem.JobSpec) time.Duration { return 10 * time.Minute }})
	require.NoError(t, err)
	ctx := t.Context()
	w := &toggle{real: c.Workload()}
	s, err := scaler.New(ctx, c, w, scaler.Config{Now: c.Now, BetaInertia: -1})
	require.NoError(t, err)
	_, err = c.AddNodes(ctx, "n", 1)
	require.NoError(t, err)
	_, err = c.Issue(ctx, batchsystem.JobSpec{Kind: "k", Requirements: batchsystem.Requirements{Cores: 2, Memory: gb, Disk: gb}})
	require.NoError(t, err)
	w.hide = true
	rep, err := s.Step(ctx)
	require.NoError(t, err)
	require.Len(t, rep.Types[0].Drained, 1)
	w.hide = false
	rep, err = s.Step(ctx)
	require.NoError(t, err)
	require.Len(t, rep.Types[0].Undrained, 1, "the draining node goes back to work")
	require.Zero(t, rep.Types[0].Added)
}

type toggle struct {
	real scaler.Workload
	hide bool
}

func (w *toggle) Issued(ctx context.Context) ([]scaler.Job, error) {
	if w.hide {
		return nil, nil
	}
	return w.real.Issued(ctx)
}
func (w *toggle) Completed(ctx context.Context) ([]scaler.CompletedJob, error) {
	return w.real.Completed(ctx)
}

func TestStepReportsUnfittableJobsAndScalesForTheRest(t *testing.T) {
	// 4 GB nodes lose about 1.1 GB to overhead: a 3.5 GB job fits the
	// simulated node but not what the scaler plans with.
	n := scaler.NodeType{Name: "n4", Shape: scaler.Shape{Memory: 4 * gb, Cores: 2, Disk: 50 * gb}}
	c, err := simcluster.New(simcluster.Config{NodeTypes: []scaler.NodeType{n},
		Runtime: func(batchsystem.JobSpec) time.Duration { return time.Minute }})
	require.NoError(t, err)
	ctx := t.Context()
	s, err := scaler.New(ctx, c, c.Workload(), scaler.Config{Now: c.Now, BetaInertia: -1})
	require.NoError(t, err)
	for _, mem := range []int64{3_500_000_000, gb} {
		_, err = c.Issue(ctx, batchsystem.JobSpec{Kind: "k", Name: "x", Requirements: batchsystem.Requirements{Cores: 1, Memory: mem, Disk: gb}})
		require.NoError(t, err)
	}
	rep, err := s.Step(ctx)
	require.ErrorIs(t, err, scaler.ErrUnfittable)
	var ue *scaler.UnfittableError
	require.ErrorAs(t, err, &ue)
	require.Equal(t, "memory", ue.Rejections[0].Types[0].Failed[0].Resource)
	require.Contains(t, err.Error(), "n4 (memory: asks 3.26GiB")
	require.Equal(t, 1, rep.Types[0].Added, "the job that fits still gets its node")
}

func TestStaticNodesAreCountedButNeverTerminated(t *testing.T) {
	n := scaler.NodeType{Name: "n", Shape: scaler.Shape{Memory: 8 * gb, Cores: 2, Disk: 50 * gb}}
	r := newRun(t, simcluster.Config{NodeTypes: []scaler.NodeType{n}, StaticNodes: map[string]int{"n": 2}},
		scaler.Config{}, nil)
	r.issue(t, 50, "k", batchsystem.Requirements{Cores: 1, Memory: gb, Disk: gb})
	require.NoError(t, r.cluster.Drive(t.Context(), r.scaler, simcluster.DriveOptions{}))
	nodes, err := r.cluster.Nodes(t.Context())
	require.NoError(t, err)
	require.Len(t, nodes, 2, "static nodes stay")
	require.Equal(t, 50, r.cluster.Stats().TotalJobs)
}

func TestShutdownTerminatesEveryAutoscaledNodeEvenBusy(t *testing.T) {
	n := scaler.NodeType{Name: "n", Shape: scaler.Shape{Memory: 8 * gb, Cores: 2, Disk: 50 * gb}}
	r := newRun(t, simcluster.Config{NodeTypes: []scaler.NodeType{n}, StaticNodes: map[string]int{"n": 1}}, scaler.Config{}, nil)
	ctx := t.Context()
	_, err := r.cluster.AddNodes(ctx, "n", 2)
	require.NoError(t, err)
	r.issue(t, 6, "k", batchsystem.Requirements{Cores: 1, Memory: gb, Disk: gb})
	require.NoError(t, r.scaler.Shutdown(ctx))
	nodes, err := r.cluster.Nodes(ctx)
	require.NoError(t, err)
	require.Len(t, nodes, 1, "only the static node is left")
}

func TestRunPassesUntilCancelled(t *testing.T) {
	c, err := simcluster.New(simcluster.Config{NodeTypes: []scaler.NodeType{{Name: "n", Shape: scaler.Shape{Memory: gb, Cores: 1}}},
		Runtime: func(batchsystem.JobSpec) time.Duration { return time.Second }})
	require.NoError(t, err)
	w := &hidden{}
	s, err := scaler.New(t.Context(), c, w, scaler.Config{ScaleInterval: time.Millisecond})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	for w.calls.Load() < 3 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
}

func TestNewRejectsBadInput(t *testing.T) {
	c, err := simcluster.New(simcluster.Config{NodeTypes: []scaler.NodeType{{Name: "n", Shape: scaler.Shape{Memory: gb, Cores: 1}}},
		Runtime: func(batchsystem.JobSpec) time.Duration { return time.Second }})
	require.NoError(t, err)
	_, err = scaler.New(t.Context(), c, nil, scaler.Config{})
	require.ErrorIs(t, err, scaler.ErrBadConfig)
	_, err = scaler.New(t.Context(), c, c.Workload(), scaler.Config{TargetTime: -time.Second})
	require.ErrorIs(t, err, scaler.ErrBadConfig)
}
