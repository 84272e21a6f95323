package toilcompare

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/scaler"
	"github.com/gafferhq/gaffer/scaler/simcluster"
)

const gb = 1_000_000_000

// toil starts the driver or skips the test when Toil is not installed
// (apt-get install -y toil).
func toil(t *testing.T) *Toil {
	t.Helper()
	tl, err := Start(t.Context(), "")
	if errors.Is(err, ErrNoToil) {
		t.Skipf("Toil not installed: %v", err)
	}
	require.NoError(t, err)
	t.Cleanup(func() { _ = tl.Close() })
	return tl
}

func randomShape(r *rand.Rand, pre bool) scaler.Shape {
	return scaler.Shape{
		WallTime:    time.Duration(1+r.IntN(5400)) * time.Second,
		Memory:      int64(1+r.IntN(64)) * gb / 2,
		Cores:       float64(1+r.IntN(32)) / 2, // halves: exact in binary
		Disk:        int64(r.IntN(20)) * gb,
		Preemptible: pre,
	}
}

func TestBinPackMatchesToil(t *testing.T) {
	tl := toil(t)
	r := rand.New(rand.NewPCG(7, 8))
	for trial := range 100 {
		var nodes []scaler.Shape
		seen := map[scaler.Shape]bool{}
		for len(nodes) < 2+r.IntN(5) {
			n := scaler.Shape{WallTime: time.Duration(600*(1+r.IntN(6))) * time.Second,
				Memory: int64(2+r.IntN(60)) * gb, Cores: float64(1 + r.IntN(32)), Disk: int64(10+r.IntN(200)) * gb,
				Preemptible: r.IntN(3) == 0}
			if !seen[n] { // Toil keys nodes by shape
				seen[n] = true
				nodes = append(nodes, n)
			}
		}
		var jobs []scaler.ShapeCount
		for range 1 + r.IntN(10) {
			jobs = append(jobs, scaler.ShapeCount{Shape: randomShape(r, r.IntN(2) == 0), Count: 1 + r.IntN(200)})
		}
		target := time.Duration(1+r.IntN(3600)) * time.Second
		got, err := scaler.BinPack(nodes, jobs, target)
		require.NoError(t, err)
		want, err := tl.BinPack(t.Context(), nodes, jobs, target)
		require.NoError(t, err)
		require.Equal(t, want.Nodes, got.Nodes, "trial %d", trial)
		require.Equal(t, unfitMap(want.Unfit), unfitMap(got.Unfit), "trial %d", trial)
	}
}

func unfitMap(u []scaler.ShapeCount) map[scaler.Shape]int {
	m := map[scaler.Shape]int{}
	for _, s := range u {
		m[s.Shape] += s.Count
	}
	return m
}

func TestReserveOverheadMatchesToil(t *testing.T) {
	tl := toil(t)
	r := rand.New(rand.NewPCG(9, 10))
	var nodes []scaler.Shape
	for range 200 {
		nodes = append(nodes, scaler.Shape{WallTime: time.Hour, Memory: 1 + r.Int64N(1<<40), Cores: 1, Disk: r.Int64N(1 << 42)})
	}
	want, err := tl.ReserveOverhead(t.Context(), nodes)
	require.NoError(t, err)
	for i, n := range nodes {
		require.Equal(t, want[i], scaler.ReserveOverhead(n), "node %v", n)
	}
}

// Workload is a simulated workflow for comparing node-hours.
type workload struct {
	name  string
	types []scaler.NodeType
	kinds []kind
	cfg   scaler.Config
}

type kind struct {
	name    string
	n       int
	req     batchsystem.Requirements
	runtime time.Duration
}

func (w workload) run(t *testing.T, packer scaler.Packer) simcluster.Stats {
	t.Helper()
	runtimes := map[string]time.Duration{}
	for _, k := range w.kinds {
		runtimes[k.name] = k.runtime
	}
	c, err := simcluster.New(simcluster.Config{NodeTypes: w.types, BootTime: 2 * time.Minute,
		Runtime: func(s batchsystem.JobSpec) time.Duration { return runtimes[s.Kind] }})
	require.NoError(t, err)
	cfg := w.cfg
	cfg.Now, cfg.Packer = c.Now, packer
	s, err := scaler.New(t.Context(), c, c.Workload(), cfg)
	require.NoError(t, err)
	ctx := t.Context()
	// Jobs arrive in waves, one kind after the other, so the scaler
	// has to learn runtimes and scale in between.
	i := 0
	for _, k := range w.kinds {
		for range k.n {
			i++
			_, err := c.Issue(ctx, batchsystem.JobSpec{JobID: fmt.Sprint(i), Name: k.name, Kind: k.name, Attempt: 1, Requirements: k.req})
			require.NoError(t, err)
		}
		require.NoError(t, c.Drive(ctx, stepper{s}, simcluster.DriveOptions{Interval: cfg.ScaleInterval}))
	}
	st := c.Stats()
	require.Zero(t, st.LostJobs)
	return st
}

// stepper ignores nothing: any pass error fails the run.
type stepper struct{ s *scaler.ClusterScaler }

func (s stepper) Step(ctx context.Context) (*scaler.Report, error) { return s.s.Step(ctx) }

func totalHours(st simcluster.Stats) float64 {
	h := 0.0
	for _, v := range st.NodeHours {
		h += v
	}
	return h
}

var workloads = []workload{
	{
		name: "three-types",
		types: []scaler.NodeType{
			{Name: "small", Shape: scaler.Shape{Memory: 8 * gb, Cores: 2, Disk: 50 * gb}, PricePerHour: 0.096},
			{Name: "medium", Shape: scaler.Shape{Memory: 32 * gb, Cores: 8, Disk: 100 * gb}, PricePerHour: 0.384},
			{Name: "large", Shape: scaler.Shape{Memory: 128 * gb, Cores: 32, Disk: 200 * gb}, PricePerHour: 1.536},
		},
		kinds: []kind{
			{"split", 1, batchsystem.Requirements{Cores: 1, Memory: 2 * gb, Disk: gb}, 2 * time.Minute},
			{"align", 600, batchsystem.Requirements{Cores: 1, Memory: 3 * gb, Disk: 2 * gb}, 7 * time.Minute},
			{"sort", 150, batchsystem.Requirements{Cores: 4, Memory: 20 * gb, Disk: 10 * gb}, 12 * time.Minute},
			{"call", 60, batchsystem.Requirements{Cores: 16, Memory: 100 * gb, Disk: 20 * gb}, 25 * time.Minute},
			{"merge", 1, batchsystem.Requirements{Cores: 2, Memory: 4 * gb, Disk: 10 * gb}, 5 * time.Minute},
		},
		cfg: scaler.Config{DefaultMaxNodes: 50, ScaleInterval: time.Minute},
	},
	{
		name: "spot-and-on-demand",
		types: []scaler.NodeType{
			{Name: "od", Shape: scaler.Shape{Memory: 16 * gb, Cores: 4, Disk: 100 * gb}, PricePerHour: 0.192},
			{Name: "spot", Shape: scaler.Shape{Memory: 16 * gb, Cores: 4, Disk: 100 * gb, Preemptible: true}, PricePerHour: 0.07},
		},
		kinds: []kind{
			{"map", 1000, batchsystem.Requirements{Cores: 1, Memory: 2 * gb, Disk: gb, Preemptible: true}, 3 * time.Minute},
			{"reduce", 60, batchsystem.Requirements{Cores: 2, Memory: 6 * gb, Disk: gb}, 20 * time.Minute},
		},
		cfg: scaler.Config{DefaultMaxNodes: 100, TargetTime: 15 * time.Minute, ScaleInterval: 30 * time.Second},
	},
}

// TestNodeHoursNoWorseThanToil runs each workload twice through the same
// simulated cluster and scaler, once packing with gaffer's BinPack and
// once with Toil's own binPacking, and compares node-hours.
func TestNodeHoursNoWorseThanToil(t *testing.T) {
	for _, w := range workloads {
		t.Run(w.name, func(t *testing.T) {
			tl := toil(t)
			ours := w.run(t, nil)
			theirs := w.run(t, tl)
			require.Positive(t, tl.Calls(), "Toil packed")
			t.Logf("%s: gaffer %.3f node-hours ($%.2f, %s), Toil %.3f node-hours ($%.2f, %s), %d Toil packings",
				w.name, totalHours(ours), ours.Cost, ours.Elapsed, totalHours(theirs), theirs.Cost, theirs.Elapsed, tl.Calls())
			require.LessOrEqual(t, totalHours(ours), totalHours(theirs)*(1+1e-9))
			require.Equal(t, theirs.MaxNodes, ours.MaxNodes)
		})
	}
}
