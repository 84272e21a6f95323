// Command route runs one workflow on several batch systems, as Galaxy's
// job dispatcher sends each job to one of several runners: tiny jobs run
// in the leader's process, big ones in worker processes, and, with
// -slurm, huge ones on Slurm. A routing rule (gaffer.Config.Route)
// chooses by what a job asks for; the choice is recorded with the job, so
// a run killed and started again on the same store keeps every job where
// it was sent.
//
//	go run ./examples/route
//	go run ./examples/route -store /tmp/route.db   # kill it, run it again
//	go run ./examples/route -slurm                 # needs a Slurm cluster
//
// It prints, from the attempts the store recorded, one line per job type
// and batch system: TYPE: BATCHSYSTEM (N jobs).
//
// With -slurm the huge jobs are Slurm batch jobs that run this program in
// worker mode: they must see the program and the store's work directory
// at the same paths as the leader (see examples/fanout). Without -store,
// -slurm makes its temporary store under the current directory rather
// than under $TMPDIR, which compute nodes rarely share.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/batchsystem/local"
	"github.com/gafferhq/gaffer/batchsystem/slurm"
	"github.com/gafferhq/gaffer/jobstore"
)

// Sizes is the workflow: how many jobs of each size, and how long each
// big or huge one works.
type Sizes struct {
	Tiny, Big, Huge int
	Work            time.Duration
}

var (
	// Tiny squares its input: a tenth of a core, in the leader's process.
	Tiny = gaffer.MustRegister("route.tiny", func(_ context.Context, _ *gaffer.JobContext, x int) (int, error) {
		return x * x, nil
	}, gaffer.Cores(0.1), gaffer.Memory("16Mi"), gaffer.Disk("1Mi"))
	// Big works a while on a core of its own.
	Big = gaffer.MustRegister("route.big", work, gaffer.Cores(1), gaffer.Memory("64Mi"), gaffer.Disk("1Mi"))
	// Huge is a big job that belongs on the cluster when there is one.
	Huge = gaffer.MustRegister("route.huge", work, gaffer.Cores(1), gaffer.Memory("64Mi"), gaffer.Disk("1Mi"), gaffer.Category("cluster"))
	// Sum adds the results.
	Sum = gaffer.MustRegister("route.sum", func(_ context.Context, _ *gaffer.JobContext, xs []int) (int, error) {
		total := 0
		for _, x := range xs {
			total += x
		}
		return total, nil
	}, gaffer.Cores(0.1), gaffer.Memory("16Mi"), gaffer.Disk("1Mi"))
	// Split makes the jobs and a follow-on that sums their results.
	Split = gaffer.MustRegister("route.split", func(_ context.Context, jc *gaffer.JobContext, s Sizes) (int, error) {
		var parts []gaffer.Input[int]
		add := func(j *gaffer.Job[int]) {
			jc.AddChild(j)
			parts = append(parts, j.Result())
		}
		for i := range s.Tiny {
			add(Tiny.New(i))
		}
		for range s.Big {
			add(Big.New(s.Work))
		}
		for range s.Huge {
			add(Huge.New(s.Work))
		}
		sum := Sum.NewFrom(gaffer.Collect(parts...))
		jc.AddFollowOn(sum)
		return gaffer.Forward(jc, sum.Result())
	}, gaffer.Cores(0.1), gaffer.Memory("16Mi"), gaffer.Disk("1Mi"))
)

func work(ctx context.Context, _ *gaffer.JobContext, d time.Duration) (int, error) {
	select {
	case <-time.After(d):
		return 1, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Rule routes by what a job asks for: under a core in the leader's
// process; the cluster category to Slurm, if the leader has it; the rest
// to worker processes.
func Rule(hasSlurm bool) func(gaffer.RouteInfo) string {
	return func(info gaffer.RouteInfo) string {
		switch {
		case info.Requirements.Cores < 1:
			return "inprocess"
		case hasSlurm && slices.Contains(info.Categories, "cluster"):
			return "slurm"
		}
		return "processes"
	}
}

func main() {
	gaffer.ServeWorker() // a worker process runs one job here and exits

	var o options
	flag.StringVar(&o.store, "store", "", "job store file (default: a fresh temporary file)")
	flag.BoolVar(&o.slurm, "slurm", false, "run the huge jobs on Slurm")
	flag.StringVar(&o.partition, "partition", "", "-slurm: partition for the jobs (default: the cluster's default)")
	flag.IntVar(&o.sizes.Tiny, "tiny", 20, "tiny jobs")
	flag.IntVar(&o.sizes.Big, "big", 4, "big jobs")
	flag.IntVar(&o.sizes.Huge, "huge", 2, "huge jobs")
	flag.DurationVar(&o.sizes.Work, "work", 2*time.Second, "how long each big and huge job works")
	flag.BoolVar(&o.verbose, "v", false, "log the leader's progress to stderr")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "route:", err)
		os.Exit(1)
	}
}

type options struct {
	store, partition string
	slurm, verbose   bool
	sizes            Sizes
}

func run(ctx context.Context, o options) error {
	logger := slog.New(slog.DiscardHandler)
	if o.verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if o.store == "" {
		parent := "" // cluster jobs need the work directory at the same path
		if o.slurm {
			parent = "."
		}
		dir, err := os.MkdirTemp(parent, "gaffer-route-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		o.store = filepath.Join(dir, "route.db")
	}
	store, err := filepath.Abs(o.store)
	if err != nil {
		return err
	}
	bss := map[string]batchsystem.BatchSystem{}
	defer func() {
		for _, bs := range bss {
			bs.Shutdown(context.Background())
		}
	}()
	if bss["inprocess"], err = local.New(local.Options{Logger: logger}); err != nil {
		return err
	}
	if bss["processes"], err = local.New(local.Options{Mode: local.Workers, Logger: logger}); err != nil {
		return err
	}
	if o.slurm {
		bs, err := slurm.New(slurm.Options{Partition: o.partition, PollInterval: time.Second, NamePrefix: "gaffer-route",
			WorkDir: store + ".work", Logger: logger,
			// Huge jobs keep a Slurm job each, so that sacct accounts
			// for each one; small ones would share pilots.
			Group: slurm.GroupOptions{SoloKinds: []string{Huge.Name()}}})
		if err != nil {
			return err
		}
		bss["slurm"] = bs
	}
	leader, err := gaffer.NewLeader(gaffer.Config{Store: store, BatchSystems: bss, Route: Rule(o.slurm), Logger: logger})
	if err != nil {
		return err
	}
	if _, err := gaffer.Run(ctx, leader, Split.New(o.sizes)); err != nil {
		leader.Close()
		return err
	}
	if err := leader.Close(); err != nil {
		return err
	}
	lines, err := Report(ctx, store)
	for _, l := range lines {
		fmt.Println(l)
	}
	return err
}

// Report reads the attempts a finished workflow's store recorded and
// returns one line per job type and batch system that ran jobs of it:
// "TYPE: BATCHSYSTEM (N jobs)", N counting the jobs that succeeded there.
func Report(ctx context.Context, store string) ([]string, error) {
	s, err := jobstore.OpenBolt(store, nil)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	type where struct{ kind, bs string }
	jobs := map[where]int{}
	err = s.View(ctx, func(tx jobstore.ReadTx) error {
		for a, err := range tx.Attempts(0) {
			if err != nil {
				return err
			}
			if a.OK {
				jobs[where{a.Kind, a.BatchSystem}]++
			}
		}
		return nil
	})
	var lines []string
	for _, w := range slices.SortedFunc(maps.Keys(jobs), func(a, b where) int {
		if a.kind != b.kind {
			return strings.Compare(a.kind, b.kind)
		}
		return strings.Compare(a.bs, b.bs)
	}) {
		lines = append(lines, fmt.Sprintf("%s: %s (%d jobs)", w.kind, w.bs, jobs[w]))
	}
	return lines, err
}
