// Command fanout runs a fan-out workflow: a root job adds N children that
// each return a number, and a follow-on sums them. It prints the sum.
//
//	go run ./examples/fanout -n 100000
//	go run ./examples/fanout -n 1000 -mode subprocess
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
	"github.com/gafferhq/gaffer/batchsystem/local"
	"github.com/gafferhq/gaffer/examples/fanout/fanout"
)

func main() {
	gaffer.ServeWorker() // a worker process runs one job here and exits

	n := flag.Int("n", 1000, "number of children")
	mode := flag.String("mode", "inprocess", "how jobs run: inprocess or subprocess")
	store := flag.String("store", "", "job store file (default: a fresh temporary file)")
	verbose := flag.Bool("v", false, "log the leader's progress to stderr")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *n, *mode, *store, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "fanout:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, n int, mode, store string, verbose bool) error {
	opts := local.Options{}
	switch mode {
	case "inprocess":
	case "subprocess":
		opts.Mode = local.Subprocess
	default:
		return fmt.Errorf("-mode %q: want inprocess or subprocess", mode)
	}
	if store == "" {
		dir, err := os.MkdirTemp("", "gaffer-fanout-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		store = filepath.Join(dir, "fanout.db")
	}
	bs, err := local.New(opts)
	if err != nil {
		return err
	}
	defer bs.Shutdown(context.Background())
	cfg := gaffer.Config{Store: store, BatchSystem: bs}
	if verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	leader, err := gaffer.NewLeader(cfg)
	if err != nil {
		return err
	}
	defer leader.Close()

	start := time.Now()
	sum, err := gaffer.Run(ctx, leader, fanout.Root.New(n))
	if err != nil {
		return err
	}
	took := time.Since(start)
	fmt.Printf("sum of 0..%d = %d\n", n-1, sum)
	fmt.Fprintf(os.Stderr, "%d jobs in %v (%.0f jobs/s)\n", n+2, took.Round(time.Millisecond), float64(n+2)/took.Seconds())
	return nil
}
