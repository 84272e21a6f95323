package scaler

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const gb = 1_000_000_000

func node(cores float64, mem int64) Shape {
	return Shape{WallTime: time.Hour, Memory: mem, Cores: cores, Disk: 100 * gb}
}

func job(wall time.Duration, cores float64, mem int64) Shape {
	return Shape{WallTime: wall, Memory: mem, Cores: cores, Disk: gb}
}

func pack(t *testing.T, nodes []Shape, target time.Duration, jobs ...ShapeCount) Packing {
	t.Helper()
	p, err := BinPack(nodes, jobs, target)
	require.NoError(t, err)
	return p
}

func TestBinPackQueuesJobsThatStartWithinTargetTime(t *testing.T) {
	// A 4-core node can start 1-core 10-minute jobs at 0, 10, 20 and 30
	// minutes (30 is the target): 16 jobs per node, so 100 jobs need 7.
	p := pack(t, []Shape{node(4, 8*gb)}, 30*time.Minute, ShapeCount{job(10*time.Minute, 1, gb), 100})
	require.Equal(t, []int{7}, p.Nodes)
	require.Empty(t, p.Unfit)
}

func TestBinPackStartsOnlyAtSliceBoundariesUpToTarget(t *testing.T) {
	n := []Shape{node(1, 8*gb)}
	j := ShapeCount{job(1000*time.Second, 1, gb), 3}
	// Starts at 0 and 1000 s; the third would start at 2000 s, past 1800.
	require.Equal(t, []int{2}, pack(t, n, 1800*time.Second, j).Nodes)
	// With a target of 2000 s it may start at 2000 s, on the same node.
	require.Equal(t, []int{1}, pack(t, n, 2000*time.Second, j).Nodes)
}

func TestBinPackLongJobsExtendTheNode(t *testing.T) {
	n := []Shape{node(2, 8*gb)}
	long := job(150*time.Minute, 1, gb)
	// Two 2.5 h jobs run side by side on one 2-core node reserved for 3 h.
	require.Equal(t, []int{1}, pack(t, n, 30*time.Minute, ShapeCount{long, 2}).Nodes)
	require.Equal(t, []int{2}, pack(t, n, 30*time.Minute, ShapeCount{long, 3}).Nodes)
}

func TestBinPackUsesTheSmallestTypeThatFits(t *testing.T) {
	small, large := node(2, 4*gb), node(16, 64*gb)
	nodes := []Shape{large, small} // order given does not matter
	p := pack(t, nodes, 30*time.Minute, ShapeCount{job(time.Minute, 1, gb), 40})
	require.Equal(t, []int{0, 1}, p.Nodes, "small jobs never get a large node")
	p = pack(t, nodes, 30*time.Minute, ShapeCount{job(time.Minute, 8, 32*gb), 4})
	require.Equal(t, []int{1, 0}, p.Nodes)
}

func TestBinPackKeepsNonPreemptibleJobsOffPreemptibleNodes(t *testing.T) {
	spot := node(16, 64*gb)
	spot.Preemptible = true
	demand := node(4, 16*gb)
	nodes := []Shape{demand, spot}

	j := job(time.Hour, 1, gb)
	p := pack(t, nodes, time.Minute, ShapeCount{j, 4})
	require.Equal(t, []int{1, 0}, p.Nodes)

	// A preemptible job prefers preemptible nodes, even bigger ones.
	j.Preemptible = true
	p = pack(t, nodes, time.Minute, ShapeCount{j, 4})
	require.Equal(t, []int{0, 1}, p.Nodes)
}

func TestBinPackReportsUnfitJobsAndPacksTheRest(t *testing.T) {
	big := job(time.Minute, 64, gb)
	p := pack(t, []Shape{node(4, 8*gb)}, time.Hour, ShapeCount{big, 3}, ShapeCount{job(time.Minute, 1, gb), 1})
	require.Equal(t, []int{1}, p.Nodes)
	require.Equal(t, []ShapeCount{{big, 3}}, p.Unfit)
}

func TestBinPackRejectsBadNodeShapes(t *testing.T) {
	_, err := BinPack([]Shape{{Cores: 1, Memory: gb}}, nil, time.Hour)
	require.ErrorIs(t, err, ErrBadShape)
}

func TestBinPackEmpty(t *testing.T) {
	p := pack(t, []Shape{node(1, gb)}, time.Hour)
	require.Equal(t, []int{0}, p.Nodes)
}

func TestFailedConstraintsNamesEveryShortResource(t *testing.T) {
	spot := node(4, 8*gb)
	spot.Preemptible = true
	got := FailedConstraints(spot, Shape{Memory: 16 * gb, Cores: 2, Disk: 200 * gb})
	var names []string
	for _, c := range got {
		names = append(names, c.Resource)
	}
	require.Equal(t, []string{"memory", "disk", "preemptible"}, names)
	require.Empty(t, FailedConstraints(spot, Shape{Memory: gb, Cores: 4, Preemptible: true}))
}

// exhaustivePack is BinPack without its two shortcuts: every reservation is
// tried for every job, as in Toil.
func exhaustivePack(nodes []Shape, jobs []Shape, target time.Duration) []int {
	p := packer{target: target}
	bins := make([]bin, len(nodes))
	for i, n := range nodes {
		bins[i].shape = n
	}
	for _, j := range jobs {
		k := -1
		for i := range bins {
			if bins[i].shape.fits(j) {
				k = i
				break
			}
		}
		if k < 0 {
			continue
		}
		b := &bins[k]
		placed := false
		for i := range b.heads {
			if _, _, ok := p.attempt(b.heads[i], b.heads[i], 0, j, b.shape); ok {
				placed = true
				break
			}
		}
		if !placed {
			p.reserve(b, j)
		}
	}
	out := make([]int, len(bins))
	for i := range bins {
		out[i] = len(bins[i].heads)
	}
	return out
}

func TestBinPackShortcutsChangeNoDecision(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		nodes := []Shape{node(2, 4*gb), node(8, 32*gb), node(32, 128*gb)}
		if trial%2 == 1 {
			nodes[1].Preemptible = true
		}
		// Short jobs cut nodes into many slices; long ones extend them.
		maxWall := []int{7200, 120, 10}[trial%3]
		var groups []ShapeCount
		var flat []Shape
		for range 1 + r.IntN(8) {
			s := Shape{
				WallTime:    time.Duration(1+r.IntN(maxWall)) * time.Second,
				Memory:      int64(1+r.IntN(40)) * gb,
				Cores:       float64(1 + r.IntN(16)),
				Disk:        int64(r.IntN(10)) * gb,
				Preemptible: r.IntN(2) == 0,
			}
			c := 1 + r.IntN(300)
			groups = append(groups, ShapeCount{s, c})
		}
		target := time.Duration(60+r.IntN(3600)) * time.Second
		p, err := BinPack(nodes, groups, target)
		require.NoError(t, err)
		sortedNodes := slices.Clone(nodes)
		slices.SortStableFunc(sortedNodes, Shape.Compare)
		sortedGroups := slices.Clone(groups)
		slices.SortStableFunc(sortedGroups, func(a, b ShapeCount) int { return b.Shape.Compare(a.Shape) })
		for _, g := range sortedGroups {
			for range g.Count {
				flat = append(flat, g.Shape)
			}
		}
		want := exhaustivePack(sortedNodes, flat, target)
		for i, n := range nodes {
			require.Equal(t, want[slices.Index(sortedNodes, n)], p.Nodes[i], "trial %d node %v", trial, n)
		}
	}
}
