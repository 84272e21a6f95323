// Command fanout runs a fan-out workflow: a root job adds N children that
// each return a number, and a follow-on sums them. It prints the sum.
//
//	go run ./examples/fanout -n 100000
//	go run ./examples/fanout -n 1000 -mode subprocess
//	go run ./examples/fanout -n 20 -mode slurm
//	go run ./examples/fanout -n 20 -mode gridengine
//
// With -mode slurm (or gridengine) every job is one Slurm (or Grid Engine)
// batch job, run by this program in worker mode. The jobs must see the
// program, the store's work directory (next to the store) and the same
// paths as the leader: on a real cluster, build the program onto a shared
// file system and pass a -store there; `go run` works on a one-node
// cluster such as the ones scripts/slurm-cluster.sh and
// scripts/gridengine-cluster.sh start. Without -store, the cluster modes
// make their temporary store under the current directory rather than
// under $TMPDIR, which compute nodes rarely share.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/batchsystem/gridengine"
	"github.com/gafferhq/gaffer/batchsystem/local"
	"github.com/gafferhq/gaffer/batchsystem/slurm"
	"github.com/gafferhq/gaffer/examples/fanout/fanout"
)

func main() {
	gaffer.ServeWorker() // a worker process runs one job here and exits

	var o options
	flag.IntVar(&o.n, "n", 1000, "number of children")
	flag.StringVar(&o.mode, "mode", "inprocess", "how jobs run: inprocess, subprocess, slurm or gridengine")
	flag.StringVar(&o.store, "store", "", "job store file (default: a fresh temporary file)")
	flag.BoolVar(&o.verbose, "v", false, "log the leader's progress to stderr")
	flag.StringVar(&o.partition, "partition", "", "slurm mode: partition for the jobs (default: the cluster's default)")
	flag.StringVar(&o.queue, "queue", "", "gridengine mode: queue for the jobs (default: the scheduler's choice)")
	flag.DurationVar(&o.poll, "poll", time.Second, "slurm and gridengine modes: least time between two squeue or qstat queries (the adapters' default is 5s; keep it there on a shared cluster)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "fanout:", err)
		os.Exit(1)
	}
}

type options struct {
	n         int
	mode      string
	store     string
	verbose   bool
	partition string
	queue     string
	poll      time.Duration
}

func run(ctx context.Context, o options) error {
	var logger *slog.Logger
	if o.verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if o.store == "" {
		// Cluster jobs need the work directory (Store + ".work") at the
		// same path: keep it out of a node-local $TMPDIR.
		parent := ""
		if o.mode == "slurm" || o.mode == "gridengine" {
			parent = "."
		}
		dir, err := os.MkdirTemp(parent, "gaffer-fanout-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		o.store = filepath.Join(dir, "fanout.db")
	}
	// Workers are started elsewhere, in another directory: give them an
	// absolute path.
	store, err := filepath.Abs(o.store)
	if err != nil {
		return err
	}

	var bs batchsystem.BatchSystem
	switch o.mode {
	case "inprocess", "subprocess":
		opts := local.Options{}
		if o.mode == "subprocess" {
			opts.Mode = local.Subprocess
		}
		bs, err = local.New(opts)
	case "slurm":
		bs, err = slurm.New(slurm.Options{
			Partition:    o.partition,
			PollInterval: o.poll,
			NamePrefix:   "gaffer-fanout",
			// Jobs run in their folder under the work directory; this is
			// only the fallback for a job without one.
			WorkDir: store + ".work",
			Logger:  logger,
		})
	case "gridengine":
		opts := gridengine.Options{
			Queue:        o.queue,
			PollInterval: o.poll,
			NamePrefix:   "gaffer-fanout",
			WorkDir:      store + ".work",
			Logger:       logger,
		}
		// On Debian and Ubuntu, call the binaries rather than the
		// /usr/bin wrapper scripts: a qsub costs a tenth.
		if r, err := gridengine.DebianRunner(); err == nil {
			opts.Runner = r
		}
		bs, err = gridengine.New(opts)
	default:
		return fmt.Errorf("-mode %q: want inprocess, subprocess, slurm or gridengine", o.mode)
	}
	if err != nil {
		return err
	}
	defer bs.Shutdown(context.Background())
	cfg := gaffer.Config{Store: store, BatchSystem: bs, Logger: logger}
	leader, err := gaffer.NewLeader(cfg)
	if err != nil {
		return err
	}
	defer leader.Close()

	start := time.Now()
	sum, err := gaffer.Run(ctx, leader, fanout.Root.New(o.n))
	if err != nil {
		return err
	}
	took := time.Since(start)
	fmt.Printf("sum of 0..%d = %d\n", o.n-1, sum)
	fmt.Fprintf(os.Stderr, "%d jobs in %v (%.0f jobs/s)\n", o.n+2, took.Round(time.Millisecond), float64(o.n+2)/took.Seconds())
	return nil
}
