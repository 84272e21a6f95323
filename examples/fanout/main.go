// Command fanout runs a fan-out workflow: a root job adds N children that
// each return a number, and a follow-on sums them. It prints the sum.
//
//	go run ./examples/fanout -n 100000
//	go run ./examples/fanout -n 1000 -mode subprocess
//	go run ./examples/fanout -n 1000 -mode process
//	go run ./examples/fanout -n 20 -mode slurm
//	go run ./examples/fanout -n 20 -mode gridengine
//
// -metrics ADDR serves Prometheus metrics at http://ADDR/metrics while it
// runs (gaffer_attempts_issued_total, gaffer_attempts_ended_total, ...:
// package metrics/prometheus) and the views of package metrics as JSON at
// http://ADDR/views; it prints the address it listens on, so ADDR may
// have port 0. A progress line (done/total, rate, failures, time left)
// goes to stderr when stderr is a terminal; -progress prints it anyway,
// a line every 10 s.
//
// With -mode subprocess every job runs in a worker process of a pool
// (local.Workers): this program in worker mode, started once and fed one
// job after another. -mode process starts one worker process per job
// (local.Subprocess), for jobs that must not share a process.
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
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/batchsystem/gridengine"
	"github.com/gafferhq/gaffer/batchsystem/local"
	"github.com/gafferhq/gaffer/batchsystem/slurm"
	"github.com/gafferhq/gaffer/examples/fanout/fanout"
	"github.com/gafferhq/gaffer/internal/progress"
	"github.com/gafferhq/gaffer/metrics"
	gafferprom "github.com/gafferhq/gaffer/metrics/prometheus"
)

func main() {
	gaffer.ServeWorker() // a worker process runs its jobs here and exits

	var o options
	flag.IntVar(&o.n, "n", 1000, "number of children")
	flag.StringVar(&o.mode, "mode", "inprocess", "how jobs run: inprocess, subprocess (a pool of worker processes), process (a worker process per job), slurm or gridengine")
	flag.StringVar(&o.store, "store", "", "job store file (default: a fresh temporary file)")
	flag.BoolVar(&o.verbose, "v", false, "log the leader's progress to stderr")
	flag.StringVar(&o.partition, "partition", "", "slurm mode: partition for the jobs (default: the cluster's default)")
	flag.StringVar(&o.queue, "queue", "", "gridengine mode: queue for the jobs (default: the scheduler's choice)")
	flag.DurationVar(&o.poll, "poll", time.Second, "slurm and gridengine modes: least time between two squeue or qstat queries (the adapters' default is 5s; keep it there on a shared cluster)")
	flag.StringVar(&o.metrics, "metrics", "", "serve Prometheus metrics on this address (host:port) at /metrics while running")
	flag.BoolVar(&o.progress, "progress", false, "print the progress line even when stderr is not a terminal")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, o)
	stop() // before os.Exit, which runs no deferred call
	if err != nil {
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
	metrics   string
	progress  bool
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
	case "inprocess", "subprocess", "process":
		opts := local.Options{}
		switch o.mode {
		case "subprocess":
			opts.Mode = local.Workers
		case "process":
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
		return fmt.Errorf("-mode %q: want inprocess, subprocess, process, slurm or gridengine", o.mode)
	}
	if err != nil {
		return err
	}
	defer bs.Shutdown(context.Background())
	cfg := gaffer.Config{Store: store, BatchSystem: bs, Logger: logger}
	if o.metrics != "" {
		stop, err := serveMetrics(o.metrics, &cfg)
		if err != nil {
			return err
		}
		defer stop()
	}
	leader, err := gaffer.NewLeader(cfg)
	if err != nil {
		return err
	}
	defer leader.Close()

	start := time.Now()
	stopProgress := func() {}
	if tty := progress.IsTerminal(os.Stderr); tty || o.progress {
		interval := 10 * time.Second
		if tty {
			interval = time.Second
		}
		p := progress.Start(os.Stderr, "fanout", tty, interval, func() progress.Figures { return figures(leader, o.n) })
		stopProgress = p.Stop
	}
	sum, err := gaffer.Run(ctx, leader, fanout.Root.New(o.n))
	stopProgress() // its last line, before anything else is printed
	if err != nil {
		return err
	}
	took := time.Since(start)
	fmt.Printf("sum of 0..%d = %d\n", o.n-1, sum)
	fmt.Fprintf(os.Stderr, "%d jobs in %v (%.0f jobs/s)\n", o.n+2, took.Round(time.Millisecond), float64(o.n+2)/took.Seconds())
	return nil
}

// figures are the progress line's: jobs done by this leader, and its
// total, which is the done ones and the live ones but the root (once the
// root's body has run, it stays live, waiting for its children and their
// sum); before anything ran, and on a fresh store, n leaves, their sum and
// the root.
func figures(l *gaffer.Leader, n int) progress.Figures {
	st, s := l.Stats(), l.Status()
	total := n + 2
	switch {
	case s.Finished:
		total = st.Successes
	case s.Live > 1:
		total = st.Successes + s.Live - 1
	}
	return progress.Figures{Done: st.Successes, Total: total, Failed: st.Failures}
}

// serveMetrics serves Prometheus metrics at /metrics and the views of
// package metrics at /views on addr, fed by the leader that cfg makes,
// and prints where. stop closes the server.
func serveMetrics(addr string, cfg *gaffer.Config) (stop func(), err error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	pm, err := gafferprom.New(reg, nil)
	if err != nil {
		return nil, err
	}
	views := metrics.New(metrics.Options{})
	cfg.Metrics = metrics.Tee(pm, views)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("/views", views)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	fmt.Fprintf(os.Stderr, "fanout: metrics at http://%s/metrics\n", ln.Addr())
	return func() { srv.Close() }, nil
}
