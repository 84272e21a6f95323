// Command gaffer-bench measures whole workflow runs: throughput, the
// leader's peak memory, and how fast a big store resumes. Each run is its
// own process, so that peak RSS belongs to one scenario.
//
//	go run ./cmd/gaffer-bench -scenario fanout -n 100000
//	go run ./cmd/gaffer-bench -scenario fanout -n 2000 -mode subprocess
//	go run ./cmd/gaffer-bench -scenario fanout -n 1000000
//	go run ./cmd/gaffer-bench -scenario resume -n 1000000
//	go run ./cmd/gaffer-bench -scenario fanout -n 100000 -metrics discard
//	go run ./cmd/gaffer-bench -scenario chain -n 500 -mode subprocess
//	go run ./cmd/gaffer-bench -scenario grid -n 300
//	go run ./cmd/gaffer-bench -scenario fanout -n 2000 -mode slurm
//	go run ./cmd/gaffer-bench -scenario chain -n 50 -mode slurm -group=false
//	go run ./cmd/gaffer-bench -scenario chain -n 500 -mode process
//
// -mode subprocess runs jobs in a pool of worker processes (local.Workers),
// each started once and fed one job after another; -mode process starts
// a worker process per job (local.Subprocess).
//
// -mode slurm runs every job on the Slurm cluster (scripts/slurm-cluster.sh
// starts a one-node one), grouped into pilots unless -group=false; -dir
// must then be on a file system the nodes share (the temporary default
// is fine on a one-node cluster).
// chain runs n jobs one after another, each taking the previous one's
// value (1 KiB) and each a child of the one before; it prints the time
// per hop and the store's size at the end. grid runs an n x n grid whose
// cells each take, and wait for, the cells above and to the left.
//
// -metrics discard gives the leader a receiver of its events that does
// nothing, to measure what reporting them costs; -metrics views keeps the
// views of package metrics.
//
// Stores are durable (fsync at every commit) and live in -dir.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/batchsystem/local"
	"github.com/gafferhq/gaffer/batchsystem/slurm"
	"github.com/gafferhq/gaffer/examples/fanout/fanout"
	"github.com/gafferhq/gaffer/internal/rusage"
	"github.com/gafferhq/gaffer/metrics"
	bolt "go.etcd.io/bbolt"
)

func main() {
	gaffer.ServeWorker()
	scenario := flag.String("scenario", "fanout", "fanout, chain, grid or resume")
	n := flag.Int("n", 100000, "children of the fan-out, steps of the chain, side of the grid")
	mode := flag.String("mode", "inprocess", "inprocess, subprocess (a pool of worker processes), process (a worker process per job) or slurm")
	flag.BoolVar(&slurmGroup, "group", true, "slurm mode: group jobs into pilots (false: one sbatch per job)")
	flag.DurationVar(&slurmPoll, "poll", time.Second, "slurm mode: least time between two squeue queries")
	dir := flag.String("dir", "", "where stores go (default: a temporary directory)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the measured part here")
	flag.StringVar(&memprofile, "memprofile", "", "write a heap profile here once half the jobs have succeeded")
	maxJobs := flag.Int("maxjobs", 0, "jobs the local batch system runs at once (0: as many as fit)")
	flag.StringVar(&metricsMode, "metrics", "none", "receiver of the leader's events: none (Config.Metrics nil), discard (a no-op receiver) or views (package metrics)")
	flag.Parse()
	switch metricsMode {
	case "none", "discard", "views":
	default:
		fmt.Fprintf(os.Stderr, "gaffer-bench: -metrics %q: want none, discard or views\n", metricsMode)
		os.Exit(2)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gaffer-bench:", err)
			os.Exit(1)
		}
		profile = f
	}
	if err := run(*scenario, *n, *mode, *dir, *maxJobs); err != nil {
		fmt.Fprintln(os.Stderr, "gaffer-bench:", err)
		os.Exit(1)
	}
}

func run(scenario string, n int, mode, dir string, maxJobs int) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "gaffer-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	opts := local.Options{MaxJobs: maxJobs}
	switch mode {
	case "inprocess":
	case "subprocess":
		opts.Mode = local.Workers
	case "process":
		opts.Mode = local.Subprocess
	case "slurm":
		useSlurm = true
	default:
		return fmt.Errorf("-mode %q: want inprocess, subprocess, process or slurm", mode)
	}
	store := filepath.Join(dir, "bench.db")
	switch scenario {
	case "fanout":
		l, bs, err := leader(store, opts)
		if err != nil {
			return err
		}
		defer bs.Shutdown(context.Background())
		defer l.Close()
		stop := startProfile()
		heapHalfway(l, n)
		start := time.Now()
		sum, err := gaffer.Run(context.Background(), l, fanout.Root.New(n))
		stop()
		if err != nil {
			return err
		}
		took := time.Since(start)
		if want := n * (n - 1) / 2; sum != want {
			return fmt.Errorf("sum %d, want %d", sum, want)
		}
		s := l.Stats()
		fmt.Printf("fanout n=%d mode=%s metrics=%s: %d jobs in %.2fs = %.0f jobs/s; %d commits; leader peak RSS %s\n",
			n, mode, metricsMode, n+2, took.Seconds(), float64(n+2)/took.Seconds(), s.Commits, peakRSS())
	case "chain", "grid":
		l, bs, err := leader(store, opts)
		if err != nil {
			return err
		}
		defer bs.Shutdown(context.Background())
		defer l.Close()
		stop := startProfile()
		start := time.Now()
		var check error
		jobs := n + 1
		if scenario == "chain" {
			var last hop
			last, err = gaffer.Run(context.Background(), l, chainRoot.New(n))
			if last.N != n {
				check = fmt.Errorf("the chain's last step counts %d steps, want %d", last.N, n)
			}
		} else {
			jobs = n*n + 1
			var v int
			v, err = gaffer.Run(context.Background(), l, gridRoot.New(n))
			if want := gridWant(n); v != want {
				check = fmt.Errorf("the grid's corner is %d, want %d", v, want)
			}
		}
		stop()
		if err != nil {
			return err
		}
		if check != nil {
			return check
		}
		took := time.Since(start)
		s := l.Stats()
		extra := ""
		if scenario == "chain" {
			extra = fmt.Sprintf("; per hop: %v", (took / time.Duration(n)).Round(time.Microsecond))
		}
		l.Close()
		fmt.Printf("%s n=%d mode=%s: %d jobs in %.2fs = %.0f jobs/s%s; %d commits; leader peak RSS %s; store %s\n",
			scenario, n, mode, jobs, took.Seconds(), float64(jobs)/took.Seconds(), extra, s.Commits, peakRSS(), storeSize(store))
	case "resume":
		// Make a store holding n pending jobs: run the fan-out until the
		// root has stored its children, then stop the leader.
		l, bs, err := leader(store, opts)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			for l.Stats().Successes < 1 {
				time.Sleep(time.Millisecond)
			}
			cancel()
		}()
		_, err = gaffer.Run(ctx, l, fanout.Root.New(n))
		if !errors.Is(err, context.Canceled) {
			return fmt.Errorf("preparing the store: %v", err)
		}
		l.Close()
		bs.Shutdown(context.Background())

		l, bs, err = leader(store, opts)
		if err != nil {
			return err
		}
		defer bs.Shutdown(context.Background())
		defer l.Close()
		stop := startProfile()
		start := time.Now()
		sum, err := gaffer.Run[int](context.Background(), l, nil)
		stop()
		if err != nil {
			return err
		}
		took := time.Since(start)
		if want := n * (n - 1) / 2; sum != want {
			return fmt.Errorf("sum %d, want %d", sum, want)
		}
		s := l.Stats()
		fmt.Printf("resume n=%d mode=%s: first job issued %.2fs after Run started; finished in %.2fs; %d commits; peak RSS of the process %s\n",
			n, mode, s.FirstIssue.Seconds(), took.Seconds(), s.Commits, peakRSS())
	default:
		return fmt.Errorf("-scenario %q: want fanout, chain, grid or resume", scenario)
	}
	return nil
}

// metricsMode says which receiver, if any, gets the leader's events.
var metricsMode string

// memprofile, if set, names the heap profile written halfway.
var memprofile string

// heapHalfway writes a heap profile once l has run half of n jobs.
func heapHalfway(l *gaffer.Leader, n int) {
	if memprofile == "" {
		return
	}
	go func() {
		for l.Stats().Successes < n/2 {
			time.Sleep(10 * time.Millisecond)
		}
		f, err := os.Create(memprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gaffer-bench:", err)
			return
		}
		defer f.Close()
		runtime.GC()
		pprof.WriteHeapProfile(f)
	}()
}

// profile, if set, receives a CPU profile of the measured part.
var profile *os.File

func startProfile() func() {
	if profile == nil {
		return func() {}
	}
	pprof.StartCPUProfile(profile)
	return func() { pprof.StopCPUProfile(); profile.Close() }
}

// The slurm mode's settings.
var (
	useSlurm   bool
	slurmGroup bool
	slurmPoll  time.Duration
)

func leader(store string, opts local.Options) (*gaffer.Leader, batchsystem.BatchSystem, error) {
	var bs batchsystem.BatchSystem
	var err error
	if useSlurm {
		bs, err = slurm.New(slurm.Options{PollInterval: slurmPoll, NamePrefix: "gaffer-bench",
			WorkDir: store + ".work", Group: slurm.GroupOptions{Off: !slurmGroup}})
	} else {
		bs, err = local.New(opts)
	}
	if err != nil {
		return nil, nil, err
	}
	cfg := gaffer.Config{Store: store, BatchSystem: bs}
	switch metricsMode {
	case "discard":
		cfg.Metrics = metrics.Discard
	case "views":
		cfg.Metrics = metrics.New(metrics.Options{})
	}
	l, err := gaffer.NewLeader(cfg)
	if err != nil {
		bs.Shutdown(context.Background())
		return nil, nil, err
	}
	return l, bs, nil
}

// peakRSS is the process's peak resident set (workers not included).
func peakRSS() string {
	n, ok := rusage.PeakRSS()
	if !ok {
		return "unknown"
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
}

// storeSize describes the store at path once its leader has closed it:
// the file's size (bbolt never shrinks a file; it reuses freed pages) and
// how many results it holds, with their bytes.
func storeSize(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return "unknown"
	}
	db, err := bolt.Open(path, 0o644, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return fmt.Sprintf("%.1f MiB file", float64(st.Size())/(1<<20))
	}
	defer db.Close()
	var n, bytes int
	db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte("results")); b != nil {
			b.ForEach(func(_, v []byte) error { n++; bytes += len(v); return nil })
		}
		return nil
	})
	return fmt.Sprintf("%.1f MiB file, %d results of %d bytes", float64(st.Size())/(1<<20), n, bytes)
}
