package gaffer_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/scaler"
	"github.com/gafferhq/gaffer/scaler/simcluster"
)

// These tests run whole workflows through a leader on a simulated cluster
// that the leader's scaler grows and shrinks, in virtual time.

const scaleGB = 1_000_000_000

func scaleReq(cores float64, mem, disk string) []gaffer.JobOption {
	return []gaffer.JobOption{gaffer.Cores(cores), gaffer.Memory(mem), gaffer.Disk(disk)}
}

func scaleOne(context.Context, *gaffer.JobContext, int) (int, error) { return 1, nil }

func scaleAdd(_ context.Context, _ *gaffer.JobContext, xs []int) (int, error) {
	return scaleTotal(xs), nil
}

func scaleTotal(xs []int) int {
	total := 0
	for _, x := range xs {
		total += x
	}
	return total
}

// scaleGather adds jobs as children of the running job and a sum of their
// results as its follow-on, and returns the sum.
func scaleGather(jc *gaffer.JobContext, jobs []*gaffer.Job[int]) (int, error) {
	parts := make([]gaffer.Input[int], len(jobs))
	for i, j := range jobs {
		jc.AddChild(j)
		parts[i] = j.Result()
	}
	sum := scaleSum.NewFrom(gaffer.Collect(parts...))
	jc.AddFollowOn(sum)
	return gaffer.Forward(jc, sum.Result())
}

// scaleLargeJobs is how many large jobs the node-types workflow runs.
const scaleLargeJobs = 3

var (
	scaleSum = gaffer.MustRegister("scaletest.sum", scaleAdd, scaleReq(1, "1G", "1G")...)

	// One node type: n leaves of 2 cores, 2 to a node.
	scaleOneLeaf = gaffer.MustRegister("scaletest.one.leaf",
		func(_ context.Context, _ *gaffer.JobContext, i int) (int, error) { return i, nil },
		scaleReq(2, "4G", "10G")...)
	scaleOneRoot = gaffer.MustRegister("scaletest.one.root", func(_ context.Context, jc *gaffer.JobContext, n int) (int, error) {
		jobs := make([]*gaffer.Job[int], n)
		for i := range n {
			jobs[i] = scaleOneLeaf.New(i)
		}
		return scaleGather(jc, jobs)
	}, scaleReq(1, "1G", "1G")...)

	// Three node types: small and medium jobs together, then large ones.
	scaleSmall     = gaffer.MustRegister("scaletest.types.small", scaleOne, scaleReq(1, "2G", "2G")...)
	scaleMedium    = gaffer.MustRegister("scaletest.types.medium", scaleOne, scaleReq(4, "12G", "10G")...)
	scaleLarge     = gaffer.MustRegister("scaletest.types.large", scaleOne, scaleReq(16, "64G", "20G")...)
	scaleTypesRoot = gaffer.MustRegister("scaletest.types.root", func(_ context.Context, jc *gaffer.JobContext, n int) (int, error) {
		parts := make([]gaffer.Input[int], 0, 2*n)
		for i := range 2 * n {
			j := scaleSmall.New(i)
			if i%2 == 1 {
				j = scaleMedium.New(i)
			}
			jc.AddChild(j)
			parts = append(parts, j.Result())
		}
		next := scaleLargeStage.NewFrom(gaffer.Collect(parts...))
		jc.AddFollowOn(next)
		return gaffer.Forward(jc, next.Result())
	}, scaleReq(1, "1G", "1G")...)
	// The large stage ends the workflow: a job after it would find the
	// idle large nodes and run there, as the simulated cluster places
	// jobs first fit.
	scaleLargeStage = gaffer.MustRegister("scaletest.types.large-stage", func(_ context.Context, jc *gaffer.JobContext, counts []int) (int, error) {
		for i := range scaleLargeJobs {
			jc.AddChild(scaleLarge.New(i))
		}
		return scaleTotal(counts), nil
	}, scaleReq(1, "1G", "1G")...)

	// Preemptible and non-preemptible jobs side by side.
	scaleSpot    = gaffer.MustRegister("scaletest.mixed.spot", scaleOne, append(scaleReq(1, "2G", "2G"), gaffer.Preemptible(true))...)
	scaleFirm    = gaffer.MustRegister("scaletest.mixed.firm", scaleOne, scaleReq(1, "2G", "2G")...)
	scaleMixRoot = gaffer.MustRegister("scaletest.mixed.root", func(_ context.Context, jc *gaffer.JobContext, n scaleMix) (int, error) {
		var jobs []*gaffer.Job[int]
		for i := range max(n.Spot, n.Firm) {
			if i < n.Spot {
				jobs = append(jobs, scaleSpot.New(i))
			}
			if i < n.Firm {
				jobs = append(jobs, scaleFirm.New(i))
			}
		}
		return scaleGather(jc, jobs)
	}, scaleReq(1, "1G", "1G")...)
)

// scaleMix is how many preemptible (spot) and non-preemptible (firm) jobs
// run side by side.
type scaleMix struct{ Spot, Firm int }

// scaleWatch stands between a simulated cluster and the leader and notes
// which type of node each job ran on: the cluster names the node in each
// finished job's BackingID, and lists the nodes that are up with their
// types. It also cancels the run when virtual time passes a limit, so
// that a workflow that can never finish fails instead of spinning.
type scaleWatch struct {
	*simcluster.Cluster
	start  time.Time
	limit  time.Duration
	cancel context.CancelFunc

	mu      sync.Mutex
	kinds   map[batchsystem.ID]string
	nodes   map[string]string         // node ID → type, for nodes seen
	ran     map[string]map[string]int // kind → node type → jobs finished there
	overran bool
}

func (w *scaleWatch) Issue(ctx context.Context, spec batchsystem.JobSpec) (batchsystem.ID, error) {
	id, err := w.Cluster.Issue(ctx, spec)
	if err == nil {
		w.mu.Lock()
		w.kinds[id] = spec.Kind
		w.mu.Unlock()
	}
	return id, err
}

func (w *scaleWatch) WaitFinished(ctx context.Context, maxWait time.Duration) (*batchsystem.FinishedJob, error) {
	f, err := w.Cluster.WaitFinished(ctx, maxWait)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.Now().Sub(w.start) > w.limit {
		w.overran = true
		w.cancel()
	}
	if f == nil || f.Reason != batchsystem.Finished {
		return f, err
	}
	typ, ok := w.nodes[f.BackingID]
	if !ok {
		// A node the watch has not seen yet; it is still up, as the
		// scaler only removes nodes between the leader's batches of
		// finished jobs.
		if nodes, lerr := w.Cluster.Nodes(ctx); lerr == nil {
			for _, n := range nodes {
				w.nodes[n.ID] = n.Type
			}
		}
		if typ, ok = w.nodes[f.BackingID]; !ok {
			typ = "unknown node " + f.BackingID
		}
	}
	kind := w.kinds[f.ID]
	delete(w.kinds, f.ID)
	if w.ran[kind] == nil {
		w.ran[kind] = map[string]int{}
	}
	w.ran[kind][typ]++
	return f, err
}

// placed returns, for a job kind, how many of its jobs finished on each
// node type.
func (w *scaleWatch) placed(kind string) map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int{}
	for typ, n := range w.ran[kind] {
		out[typ] = n
	}
	return out
}

// scaleRun is one workflow run on a simulated cluster.
type scaleRun[Out any] struct {
	got    Out
	c      *simcluster.Cluster
	w      *scaleWatch
	l      *gaffer.Leader
	static []string // IDs of the nodes up before the run
}

// runScaled runs root through a leader with the cluster as its batch
// system and provisioner. runtimes are by job kind, in virtual time.
func runScaled[Out any](t *testing.T, cc simcluster.Config, runtimes map[string]time.Duration, sc scaler.Config,
	root *gaffer.Job[Out]) *scaleRun[Out] {
	t.Helper()
	cc.Runtime = func(s batchsystem.JobSpec) time.Duration { return runtimes[s.Kind] }
	c, err := simcluster.New(cc)
	require.NoError(t, err)
	r := &scaleRun[Out]{c: c}
	nodes, err := c.Nodes(t.Context())
	require.NoError(t, err)
	for _, n := range nodes {
		r.static = append(r.static, n.ID)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	r.w = &scaleWatch{Cluster: c, start: c.Now(), limit: 7 * 24 * time.Hour, cancel: cancel,
		kinds: map[batchsystem.ID]string{}, nodes: map[string]string{}, ran: map[string]map[string]int{}}
	r.l, err = gaffer.NewLeader(gaffer.Config{Store: filepath.Join(t.TempDir(), "wf.db"),
		BatchSystem: r.w, Provisioner: c, Scaling: sc, NoSync: true, RetryCount: gaffer.NoRetries})
	require.NoError(t, err)
	t.Cleanup(func() { r.l.Close() })
	r.got, err = gaffer.Run(ctx, r.l, root)
	r.w.mu.Lock()
	overran := r.w.overran
	r.w.mu.Unlock()
	require.False(t, overran, "the workflow was not done after %s of virtual time", r.w.limit)
	require.NoError(t, err)
	return r
}

// requireScaledIn checks that only the static nodes are left, and that no
// job was lost to a node terminated under it, nor failed.
func (r *scaleRun[Out]) requireScaledIn(t *testing.T) {
	t.Helper()
	nodes, err := r.c.Nodes(t.Context())
	require.NoError(t, err)
	var left []string
	for _, n := range nodes {
		left = append(left, n.ID)
	}
	require.ElementsMatch(t, r.static, left, "nodes up after the run")
	require.Zero(t, r.c.Stats().LostJobs, "jobs lost to terminated nodes")
	require.Zero(t, r.l.Stats().Failures, "failed job attempts")
}

func TestScalerGrowsOneNodeTypeAndGivesItBack(t *testing.T) {
	t.Parallel()
	const n = 24
	cc := simcluster.Config{
		NodeTypes: []scaler.NodeType{
			{Name: "std", Shape: scaler.Shape{Cores: 4, Memory: 16 * scaleGB, Disk: 100 * scaleGB}, PricePerHour: 0.2},
		},
		BootTime:    2 * time.Minute,
		StaticNodes: map[string]int{"std": 1},
	}
	runtimes := map[string]time.Duration{
		scaleOneRoot.Name(): time.Minute, scaleOneLeaf.Name(): 20 * time.Minute, scaleSum.Name(): time.Minute,
	}

	r := runScaled(t, cc, runtimes, scaler.Config{}, scaleOneRoot.New(n))

	require.Equal(t, n*(n-1)/2, r.got, "the sum of the leaves 0..n-1")
	require.Equal(t, map[string]int{"std": n}, r.w.placed(scaleOneLeaf.Name()))
	// The static node runs two leaves at a time: 24 leaves of 20 minutes
	// would take four hours on it alone; the scaler must have added nodes,
	// or scaling back in would prove nothing.
	require.Greater(t, r.c.Stats().MaxNodes["std"], 1, "the scaler never added a node")
	// The static node is the scaler's to count, never to terminate.
	require.Len(t, r.static, 1)
	r.requireScaledIn(t)
}

func TestScalerKeepsSmallJobsOffLargeNodes(t *testing.T) {
	t.Parallel()
	const n = 12 // small jobs, and as many medium ones
	cc := simcluster.Config{
		NodeTypes: []scaler.NodeType{
			{Name: "small", Shape: scaler.Shape{Memory: 8 * scaleGB, Cores: 2, Disk: 50 * scaleGB}, PricePerHour: 0.096},
			{Name: "medium", Shape: scaler.Shape{Memory: 32 * scaleGB, Cores: 8, Disk: 100 * scaleGB}, PricePerHour: 0.384},
			{Name: "large", Shape: scaler.Shape{Memory: 128 * scaleGB, Cores: 32, Disk: 200 * scaleGB}, PricePerHour: 1.536},
		},
		BootTime: 2 * time.Minute,
	}
	runtimes := map[string]time.Duration{
		scaleTypesRoot.Name(): time.Minute, scaleLargeStage.Name(): time.Minute,
		scaleSmall.Name(): 10 * time.Minute, scaleMedium.Name(): 20 * time.Minute, scaleLarge.Name(): 30 * time.Minute,
	}

	r := runScaled(t, cc, runtimes, scaler.Config{}, scaleTypesRoot.New(n))

	require.Equal(t, 2*n, r.got, "every small and medium job's result reached the end")
	small, medium, large := r.w.placed(scaleSmall.Name()), r.w.placed(scaleMedium.Name()), r.w.placed(scaleLarge.Name())
	// The simulated cluster puts a job on the first node with room, so a
	// small job would land on a large node if one were up while it
	// waited. None may be: the scaler packs each job onto the smallest
	// type it fits, and large nodes come only with the large jobs.
	require.Equal(t, n, small["small"]+small["medium"], "small jobs by node type: %v", small)
	require.Positive(t, small["small"], "small jobs ran on small nodes: %v", small)
	require.Equal(t, map[string]int{"medium": n}, medium)
	require.Equal(t, map[string]int{"large": scaleLargeJobs}, large)
	r.requireScaledIn(t)
}

func TestScalerRunsPreemptibleAndFirmJobsTogether(t *testing.T) {
	t.Parallel()
	shape := scaler.Shape{Memory: 16 * scaleGB, Cores: 4, Disk: 100 * scaleGB}
	spotShape := shape
	spotShape.Preemptible = true
	types := []scaler.NodeType{
		{Name: "spot", Shape: spotShape, PricePerHour: 0.06},
		{Name: "ondemand", Shape: shape, PricePerHour: 0.2},
	}
	runtimes := map[string]time.Duration{
		scaleMixRoot.Name(): time.Minute, scaleSum.Name(): time.Minute,
		scaleSpot.Name(): 15 * time.Minute, scaleFirm.Name(): 15 * time.Minute,
	}

	t.Run("spot available", func(t *testing.T) {
		t.Parallel()
		const n = 12
		cc := simcluster.Config{NodeTypes: types, BootTime: 2 * time.Minute}
		r := runScaled(t, cc, runtimes, scaler.Config{}, scaleMixRoot.New(scaleMix{Spot: n, Firm: n}))

		require.Equal(t, 2*n, r.got)
		spot, firm := r.w.placed(scaleSpot.Name()), r.w.placed(scaleFirm.Name())
		require.Equal(t, map[string]int{"ondemand": n}, firm, "non-preemptible jobs never run on spot nodes")
		require.Equal(t, n, spot["spot"]+spot["ondemand"], "preemptible jobs by node type: %v", spot)
		// The scaler starts spot nodes only if the leader told it which
		// jobs may run there.
		require.Positive(t, r.c.Stats().MaxNodes["spot"], "no spot node was started")
		require.Positive(t, spot["spot"], "preemptible jobs ran on spot nodes: %v", spot)
		r.requireScaledIn(t)
	})

	t.Run("no spot capacity", func(t *testing.T) {
		t.Parallel()
		// The cloud has no spot nodes to give. The scaler packs the
		// preemptible jobs onto spot nodes only, so once the few firm
		// jobs are done it drains the on-demand node they ran on; what
		// keeps the preemptible jobs going is that it asks for on-demand
		// nodes in place of the spot ones it was refused. Without that
		// (compensation 0) this workflow never ends.
		cc := simcluster.Config{NodeTypes: types, BootTime: 2 * time.Minute, Capacity: map[string]int{"spot": 0}}
		mix := scaleMix{Spot: 12, Firm: 2}
		r := runScaled(t, cc, runtimes, scaler.Config{PreemptibleCompensation: 1}, scaleMixRoot.New(mix))

		require.Equal(t, mix.Spot+mix.Firm, r.got)
		require.Equal(t, map[string]int{"ondemand": mix.Spot}, r.w.placed(scaleSpot.Name()))
		require.Equal(t, map[string]int{"ondemand": mix.Firm}, r.w.placed(scaleFirm.Name()))
		require.Zero(t, r.c.Stats().MaxNodes["spot"])
		r.requireScaledIn(t)
	})
}
