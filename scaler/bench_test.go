package scaler_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/internal/rusage"
	"github.com/gafferhq/gaffer/scaler"
	"github.com/gafferhq/gaffer/scaler/simcluster"
)

// cpuTime is the process's user and system CPU time so far. Benchmarks
// report it per op next to wall time, because on a shared machine wall
// time also counts other processes' turns.
func cpuTime() time.Duration {
	d, _ := rusage.CPU() // 0 where unknown
	return d
}

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N)/1e6, "cpu-ms/op")
}

// tenTypes is a spread of node types like a cloud's general-purpose,
// compute and memory families, two of them preemptible.
func tenTypes() []scaler.NodeType {
	var out []scaler.NodeType
	for i, c := range []struct {
		cores float64
		mem   int64
		pre   bool
	}{{2, 4, false}, {2, 8, false}, {4, 16, false}, {8, 32, false}, {16, 64, false},
		{32, 128, false}, {8, 64, false}, {16, 128, false}, {4, 16, true}, {16, 64, true}} {
		out = append(out, scaler.NodeType{Name: fmt.Sprint("t", i),
			Shape: scaler.Shape{WallTime: time.Hour, Cores: c.cores, Memory: c.mem * gb, Disk: 200 * gb, Preemptible: c.pre}})
	}
	return out
}

func usable(types []scaler.NodeType) []scaler.Shape {
	var out []scaler.Shape
	for _, t := range types {
		out = append(out, scaler.ReserveOverhead(t.Shape))
	}
	return out
}

// kindsJobs is 100,000 jobs of 20 kinds: each kind has one shape, as when
// runtimes are learnt per kind.
func kindsJobs(n int) []scaler.ShapeCount {
	r := rand.New(rand.NewPCG(11, 12))
	var out []scaler.ShapeCount
	for k := range 20 {
		out = append(out, scaler.ShapeCount{Count: n / 20, Shape: scaler.Shape{
			WallTime:    time.Duration(30+r.IntN(3600)) * time.Second,
			Memory:      int64(1+r.IntN(24)) * gb / 2,
			Cores:       float64(1 + r.IntN(8)),
			Disk:        int64(1+r.IntN(20)) * gb,
			Preemptible: k%3 == 0,
		}})
	}
	return out
}

// distinctJobs is n jobs that all differ: the packer's worst case, since
// identical shapes are what lets it skip reservations already full.
func distinctJobs(n int) []scaler.ShapeCount {
	r := rand.New(rand.NewPCG(13, 14))
	out := make([]scaler.ShapeCount, n)
	for i := range out {
		out[i] = scaler.ShapeCount{Count: 1, Shape: scaler.Shape{
			WallTime:    time.Duration(30+r.IntN(3600)) * time.Second,
			Memory:      int64(1+r.IntN(24)) * gb / 2,
			Cores:       float64(1 + r.IntN(8)),
			Disk:        int64(1+r.IntN(20)) * gb,
			Preemptible: r.IntN(3) == 0,
		}}
	}
	return out
}

func benchPack(b *testing.B, jobs []scaler.ShapeCount) {
	nodes := usable(tenTypes())
	var total int
	defer reportCPU(b, cpuTime())
	for b.Loop() {
		p, err := scaler.BinPack(nodes, jobs, 30*time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		total = 0
		for _, n := range p.Nodes {
			total += n
		}
	}
	b.ReportMetric(float64(total), "nodes")
}

func BenchmarkBinPack100kJobs20Kinds10Types(b *testing.B) { benchPack(b, kindsJobs(100_000)) }

func BenchmarkBinPack100kDistinctJobs10Types(b *testing.B) { benchPack(b, distinctJobs(100_000)) }

// fixedWorkload reports the same issued jobs every pass.
type fixedWorkload []scaler.Job

func (w fixedWorkload) Issued(context.Context) ([]scaler.Job, error)             { return w, nil }
func (w fixedWorkload) Completed(context.Context) ([]scaler.CompletedJob, error) { return nil, nil }

// noNodes is a provisioner that never delivers, so every pass plans from
// scratch.
type noNodes []scaler.NodeType

func (p noNodes) NodeTypes(context.Context) ([]scaler.NodeType, error) { return p, nil }
func (p noNodes) AddNodes(context.Context, string, int) (int, error)   { return 0, nil }
func (p noNodes) TerminateNodes(context.Context, []string) error       { return nil }
func (p noNodes) Nodes(context.Context) ([]scaler.Node, error)         { return nil, nil }

// BenchmarkStep100kIssuedJobs is one whole scaler pass over 100,000
// issued jobs of 20 kinds: grouping, runtime lookup, packing, planning.
func BenchmarkStep100kIssuedJobs(b *testing.B) {
	var w fixedWorkload
	for _, g := range kindsJobs(100_000) {
		for range g.Count {
			w = append(w, scaler.Job{Kind: g.Shape.String(), Requirements: batchsystem.Requirements{
				Cores: g.Shape.Cores, Memory: g.Shape.Memory, Disk: g.Shape.Disk, Preemptible: g.Shape.Preemptible}})
		}
	}
	s, err := scaler.New(context.Background(), noNodes(tenTypes()), w, scaler.Config{DefaultMaxNodes: 100000})
	if err != nil {
		b.Fatal(err)
	}
	defer reportCPU(b, cpuTime())
	for b.Loop() {
		if _, err := s.Step(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSimulated100kJobs is an autoscaled run of 100,000 jobs of five
// kinds on three node types in the simulated cluster, from the first job
// to the last node terminated.
func BenchmarkSimulated100kJobs(b *testing.B) {
	types := []scaler.NodeType{
		{Name: "small", Shape: scaler.Shape{Memory: 8 * gb, Cores: 2, Disk: 50 * gb}, PricePerHour: 0.096},
		{Name: "medium", Shape: scaler.Shape{Memory: 32 * gb, Cores: 8, Disk: 100 * gb}, PricePerHour: 0.384},
		{Name: "large", Shape: scaler.Shape{Memory: 128 * gb, Cores: 32, Disk: 200 * gb}, PricePerHour: 1.536},
	}
	kinds := []struct {
		name string
		req  batchsystem.Requirements
		run  time.Duration
	}{
		{"align", batchsystem.Requirements{Cores: 1, Memory: 3 * gb, Disk: 2 * gb}, 7 * time.Minute},
		{"count", batchsystem.Requirements{Cores: 1, Memory: gb, Disk: gb}, 40 * time.Second},
		{"sort", batchsystem.Requirements{Cores: 4, Memory: 20 * gb, Disk: 10 * gb}, 12 * time.Minute},
		{"call", batchsystem.Requirements{Cores: 16, Memory: 100 * gb, Disk: 20 * gb}, 25 * time.Minute},
		{"qc", batchsystem.Requirements{Cores: 2, Memory: 4 * gb, Disk: gb}, 3 * time.Minute},
	}
	runtimes := map[string]time.Duration{}
	for _, k := range kinds {
		runtimes[k.name] = k.run
	}
	var st simcluster.Stats
	defer reportCPU(b, cpuTime())
	for b.Loop() {
		c, err := simcluster.New(simcluster.Config{NodeTypes: types, BootTime: 2 * time.Minute,
			Runtime: func(s batchsystem.JobSpec) time.Duration { return runtimes[s.Kind] }})
		if err != nil {
			b.Fatal(err)
		}
		s, err := scaler.New(b.Context(), c, c.Workload(), scaler.Config{Now: c.Now, DefaultMaxNodes: 200})
		if err != nil {
			b.Fatal(err)
		}
		for i := range 100_000 {
			k := kinds[i%len(kinds)]
			if i%len(kinds) == 3 && i%100 != 3 { // few "call" jobs
				k = kinds[1]
			}
			if _, err := c.Issue(b.Context(), batchsystem.JobSpec{Kind: k.name, Requirements: k.req}); err != nil {
				b.Fatal(err)
			}
		}
		if err := c.Drive(b.Context(), s, simcluster.DriveOptions{}); err != nil {
			b.Fatal(err)
		}
		st = c.Stats()
		if st.TotalJobs != 100_000 {
			b.Fatalf("%d jobs finished", st.TotalJobs)
		}
	}
	h := 0.0
	for _, v := range st.NodeHours {
		h += v
	}
	b.ReportMetric(h, "node-hours")
	b.ReportMetric(st.Cost, "cost")
	b.ReportMetric(st.Elapsed.Hours(), "virtual-hours")
}
