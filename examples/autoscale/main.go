// Command autoscale runs a small genomics-like workflow through a gaffer
// leader on a simulated cluster with three node types, lets the leader's
// cluster scaler size the cluster, and prints how many nodes of each type
// were up over time and what it cost.
//
// The workflow is real: job types registered with gaffer, a job graph
// that grows as jobs run, results passed along as promises, a job store
// on disk. Only the machines are simulated: the cluster runs each job for
// a virtual time that depends on its type, then calls its body, so hours
// of cluster time take seconds. The leader notices that the cluster keeps
// its own clock and steps the scaler on it.
//
//	go run ./examples/autoscale
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/scaler"
	"github.com/gafferhq/gaffer/scaler/simcluster"
)

const gb = 1_000_000_000

// stage is one job type of the workflow: how many jobs of it run, what
// each asks for and how long each runs on the simulated cluster.
type stage struct {
	name    string // registered as "autoscale." + name
	jobs    int
	req     batchsystem.Requirements
	runtime time.Duration
}

var nodeTypes = []scaler.NodeType{
	{Name: "small", Shape: scaler.Shape{Memory: 8 * gb, Cores: 2, Disk: 50 * gb}, PricePerHour: 0.096},
	{Name: "medium", Shape: scaler.Shape{Memory: 32 * gb, Cores: 8, Disk: 100 * gb}, PricePerHour: 0.384},
	{Name: "large", Shape: scaler.Shape{Memory: 128 * gb, Cores: 32, Disk: 200 * gb}, PricePerHour: 1.536},
}

const (
	nAlign = 2000
	nSort  = 400
	nCall  = 100
)

// launcher is what the jobs that only start the next stage ask for: they
// do no work of their own, but still need room on some node to run.
var launcher = batchsystem.Requirements{Cores: 1, Memory: gb, Disk: gb}

// stages in the order they run. The "-stage" ones are the launchers that
// add the next stage's jobs once the previous stage is done.
var stages = []stage{
	{"split", 1, batchsystem.Requirements{Cores: 1, Memory: 2 * gb, Disk: gb}, 2 * time.Minute},
	{"align", nAlign, batchsystem.Requirements{Cores: 1, Memory: 3 * gb, Disk: 2 * gb}, 7 * time.Minute},
	{"sort-stage", 1, launcher, 10 * time.Second},
	{"sort", nSort, batchsystem.Requirements{Cores: 4, Memory: 20 * gb, Disk: 10 * gb}, 12 * time.Minute},
	{"call-stage", 1, launcher, 10 * time.Second},
	{"call", nCall, batchsystem.Requirements{Cores: 16, Memory: 100 * gb, Disk: 20 * gb}, 25 * time.Minute},
	{"merge", 1, batchsystem.Requirements{Cores: 2, Memory: 4 * gb, Disk: 10 * gb}, 5 * time.Minute},
}

// req returns the requirements of a stage, as a job option for its type.
func req(name string) gaffer.JobOption {
	for _, s := range stages {
		if s.name == name {
			return gaffer.WithRequirements(s.req)
		}
	}
	panic("autoscale: no stage " + name)
}

// The job types. Each job returns how many of the input chunks it covers,
// so the merge's result says whether every chunk made it through every
// stage. Each stage's launcher forwards its follow-on's result, so the
// root's value is the merge's.
var (
	split = gaffer.MustRegister("autoscale.split", func(ctx context.Context, jc *gaffer.JobContext, chunks int) (int, error) {
		parts := make([]gaffer.Input[int], chunks)
		for i := range chunks {
			a := align.New(i)
			jc.AddChild(a)
			parts[i] = a.Result()
		}
		next := sortStage.NewFrom(gaffer.Collect(parts...))
		jc.AddFollowOn(next)
		return gaffer.Forward(jc, next.Result())
	}, req("split"))

	align = gaffer.MustRegister("autoscale.align", func(ctx context.Context, jc *gaffer.JobContext, chunk int) (int, error) {
		return 1, nil
	}, req("align"))

	sortStage = gaffer.MustRegister("autoscale.sort-stage", func(ctx context.Context, jc *gaffer.JobContext, counts []int) (int, error) {
		return fanIn(jc, counts, nSort, sortJob, callStage)
	}, req("sort-stage"))

	sortJob = gaffer.MustRegister("autoscale.sort", sum, req("sort"))

	callStage = gaffer.MustRegister("autoscale.call-stage", func(ctx context.Context, jc *gaffer.JobContext, counts []int) (int, error) {
		return fanIn(jc, counts, nCall, call, merge)
	}, req("call-stage"))

	call = gaffer.MustRegister("autoscale.call", sum, req("call"))

	merge = gaffer.MustRegister("autoscale.merge", sum, req("merge"))
)

func sum(ctx context.Context, jc *gaffer.JobContext, counts []int) (int, error) {
	total := 0
	for _, c := range counts {
		total += c
	}
	return total, nil
}

// fanIn adds n jobs of type work as children, each taking a share of
// counts, and a follow-on of type next that takes all their results; it
// returns next's result.
func fanIn(jc *gaffer.JobContext, counts []int, n int, work, next *gaffer.JobType[[]int, int]) (int, error) {
	parts := make([]gaffer.Input[int], n)
	for i := range n {
		w := work.New(counts[i*len(counts)/n : (i+1)*len(counts)/n])
		jc.AddChild(w)
		parts[i] = w.Result()
	}
	f := next.NewFrom(gaffer.Collect(parts...))
	jc.AddFollowOn(f)
	return gaffer.Forward(jc, f.Result())
}

func main() {
	width := flag.Int("width", 72, "columns of the chart")
	flag.Parse()
	if err := run(context.Background(), os.Stdout, *width); err != nil {
		fmt.Fprintln(os.Stderr, "autoscale:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, width int) error {
	runtimes := map[string]time.Duration{}
	for _, s := range stages {
		runtimes["autoscale."+s.name] = s.runtime
	}
	c, err := simcluster.New(simcluster.Config{
		NodeTypes: nodeTypes,
		BootTime:  2 * time.Minute,
		// Kind is the job's registered type name.
		Runtime: func(s batchsystem.JobSpec) time.Duration { return runtimes[s.Kind] },
	})
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "gaffer-autoscale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	t := &tally{Cluster: c, kind: map[batchsystem.ID]string{}, done: map[string]int{}, last: map[string]time.Time{}}
	l, err := gaffer.NewLeader(gaffer.Config{
		Store:       filepath.Join(dir, "autoscale.db"),
		BatchSystem: t,
		Provisioner: c,
		Scaling: scaler.Config{
			MaxNodes:   map[string]int{"small": 60, "medium": 20, "large": 8},
			TargetTime: 15 * time.Minute,
		},
		// The store is deleted when the example ends; syncing each of
		// its thousands of commits to disk would only slow it down.
		NoSync: true,
	})
	if err != nil {
		return err
	}
	defer l.Close()
	start := c.Now()
	result, err := gaffer.Run(ctx, l, split.New(nAlign))
	if err != nil {
		return err
	}
	for _, s := range stages {
		kind := "autoscale." + s.name
		fmt.Fprintf(out, "%-10s %5d jobs done at %s\n", s.name, t.done[kind], t.last[kind].Sub(start))
	}
	fmt.Fprintf(out, "workflow result: %d of %d chunks merged\n", result, nAlign)
	fmt.Fprintln(out)
	chart(out, c.Timeline(), start, c.Now(), width)
	fmt.Fprintln(out)
	stats(out, c.Stats(), l.Stats().Failures)
	left, err := c.Nodes(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "nodes still up at the end: %d\n", len(left))
	return nil
}

// tally stands between the cluster and the leader to note, per job type,
// how many jobs finished and when the last one did, in virtual time.
// Everything else is the cluster's: its clock, and running jobs in
// process, which the leader looks for.
type tally struct {
	*simcluster.Cluster
	mu   sync.Mutex
	kind map[batchsystem.ID]string
	done map[string]int
	last map[string]time.Time
}

func (t *tally) Issue(ctx context.Context, spec batchsystem.JobSpec) (batchsystem.ID, error) {
	id, err := t.Cluster.Issue(ctx, spec)
	if err == nil {
		t.mu.Lock()
		t.kind[id] = spec.Kind
		t.mu.Unlock()
	}
	return id, err
}

func (t *tally) WaitFinished(ctx context.Context, maxWait time.Duration) (*batchsystem.FinishedJob, error) {
	f, err := t.Cluster.WaitFinished(ctx, maxWait)
	if f != nil {
		t.mu.Lock()
		kind := t.kind[f.ID]
		delete(t.kind, f.ID)
		if f.Reason == batchsystem.Finished && f.ExitCode == 0 {
			t.done[kind]++
			t.last[kind] = t.Now()
		}
		t.mu.Unlock()
	}
	return f, err
}

// chart prints one row per node type: each column is the most nodes of
// that type up during its span of time, as a digit on a scale where 9 is
// the highest count of any type ('.' is none).
func chart(out io.Writer, tl []simcluster.Sample, start, end time.Time, width int) {
	span := end.Sub(start)
	if span <= 0 || width <= 0 {
		return
	}
	col := max(span/time.Duration(width), 1)
	rows := map[string][]int{}
	top := 1
	for _, t := range nodeTypes {
		row := make([]int, width)
		for i := range width {
			from, to := start.Add(time.Duration(i)*col), start.Add(time.Duration(i+1)*col)
			for j, s := range tl {
				// Sample j holds from s.At until the next sample.
				until := end
				if j+1 < len(tl) {
					until = tl[j+1].At
				}
				if s.At.Before(to) && until.After(from) {
					row[i] = max(row[i], s.Nodes[t.Name])
				}
			}
			top = max(top, row[i])
		}
		rows[t.Name] = row
	}
	fmt.Fprintf(out, "nodes per type over %s; one column is %s; digit d means up to d/9 of %d nodes\n",
		span.Round(time.Second), col.Round(time.Second), top)
	for _, t := range nodeTypes {
		var b strings.Builder
		peak := 0
		for _, n := range rows[t.Name] {
			peak = max(peak, n)
			b.WriteByte(level(n, top))
		}
		fmt.Fprintf(out, "%-7s|%s| peak %d\n", t.Name, b.String(), peak)
	}
	end2 := span.Round(time.Minute).String()
	fmt.Fprintf(out, "%-7s 0%s%s\n", "", strings.Repeat(" ", max(width-len(end2)-1, 0)), end2)
}

// level maps n of top to '.' (none) or a digit 1-9 (rounded up, so that a
// single node shows).
func level(n, top int) byte {
	if n <= 0 {
		return '.'
	}
	return byte('0' + min(9, (9*n+top-1)/top))
}

func stats(out io.Writer, st simcluster.Stats, failed int) {
	fmt.Fprintf(out, "total jobs %d (failed %d, lost %d), elapsed %s of virtual time\n", st.TotalJobs, failed, st.LostJobs, st.Elapsed)
	fmt.Fprintf(out, "worker time %s (node lifetimes summed), %s per job; job run time summed %s\n",
		st.WorkerTime.Round(time.Second), st.WorkerTimePerJob.Round(time.Millisecond), st.JobTime)
	total := 0.0
	for _, t := range nodeTypes {
		h := st.NodeHours[t.Name]
		total += h
		fmt.Fprintf(out, "  %-7s max %3d nodes, %8.2f node-hours, $%8.2f\n", t.Name, st.MaxNodes[t.Name], h, h*t.PricePerHour)
	}
	fmt.Fprintf(out, "  total            %8.2f node-hours, $%8.2f\n", total, st.Cost)
}
