// Command autoscale runs a small genomics-like workflow through the
// simulated cluster with the cluster scaler, three node types, and prints
// how many nodes of each type were up over time and what it cost.
//
// There is no leader yet: a plain driver issues each stage's jobs when the
// previous stage is done, and the scaler learns runtimes as jobs finish.
//
//	go run ./examples/autoscale
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/scaler"
	"github.com/gafferhq/gaffer/scaler/simcluster"
)

const gb = 1_000_000_000

type stage struct {
	kind    string
	jobs    int
	req     batchsystem.Requirements
	runtime time.Duration
}

var nodeTypes = []scaler.NodeType{
	{Name: "small", Shape: scaler.Shape{Memory: 8 * gb, Cores: 2, Disk: 50 * gb}, PricePerHour: 0.096},
	{Name: "medium", Shape: scaler.Shape{Memory: 32 * gb, Cores: 8, Disk: 100 * gb}, PricePerHour: 0.384},
	{Name: "large", Shape: scaler.Shape{Memory: 128 * gb, Cores: 32, Disk: 200 * gb}, PricePerHour: 1.536},
}

var stages = []stage{
	{"split", 1, batchsystem.Requirements{Cores: 1, Memory: 2 * gb, Disk: gb}, 2 * time.Minute},
	{"align", 2000, batchsystem.Requirements{Cores: 1, Memory: 3 * gb, Disk: 2 * gb}, 7 * time.Minute},
	{"sort", 400, batchsystem.Requirements{Cores: 4, Memory: 20 * gb, Disk: 10 * gb}, 12 * time.Minute},
	{"call", 100, batchsystem.Requirements{Cores: 16, Memory: 100 * gb, Disk: 20 * gb}, 25 * time.Minute},
	{"merge", 1, batchsystem.Requirements{Cores: 2, Memory: 4 * gb, Disk: 10 * gb}, 5 * time.Minute},
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
		runtimes[s.kind] = s.runtime
	}
	c, err := simcluster.New(simcluster.Config{
		NodeTypes: nodeTypes,
		BootTime:  2 * time.Minute,
		Runtime:   func(s batchsystem.JobSpec) time.Duration { return runtimes[s.Kind] },
	})
	if err != nil {
		return err
	}
	s, err := scaler.New(ctx, c, c.Workload(), scaler.Config{
		Now:        c.Now,
		MaxNodes:   map[string]int{"small": 60, "medium": 20, "large": 8},
		TargetTime: 15 * time.Minute,
	})
	if err != nil {
		return err
	}
	start := c.Now()
	failed := 0
	id := 0
	for _, st := range stages {
		for range st.jobs {
			id++
			_, err := c.Issue(ctx, batchsystem.JobSpec{JobID: fmt.Sprint(id), Name: fmt.Sprintf("%s-%d", st.kind, id),
				Kind: st.kind, Attempt: 1, Requirements: st.req})
			if err != nil {
				return err
			}
		}
		// Run this stage to the end, scaling every minute; the scaler
		// also scales in between stages, as a leader's would.
		err := c.Drive(ctx, s, simcluster.DriveOptions{
			OnFinished: func(f batchsystem.FinishedJob) {
				if f.ExitCode != 0 {
					failed++
				}
			},
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%-6s %5d jobs done at %s (runtime learnt: %s)\n", st.kind, st.jobs, c.Now().Sub(start), s.Runtime(st.kind))
	}
	fmt.Fprintln(out)
	chart(out, c.Timeline(), start, c.Now(), width)
	fmt.Fprintln(out)
	stats(out, c.Stats(), failed)
	left, err := c.Nodes(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "nodes still up at the end: %d\n", len(left))
	return nil
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
