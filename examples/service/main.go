// Command service runs a key-value server as a gaffer service. The root
// job adds the server as its service and N writer children; each writer
// takes the server's address (the value the service's Start returned) as
// a promise in its input and PUTs one key over HTTP. A follow-on GETs
// every key back and checks it, while the server still runs; the leader
// stops the server after that. It prints the check's summary, which
// names the processes involved, and the wall time.
//
//	go run ./examples/service
//	go run ./examples/service -n 100 -mode inprocess
//
// In the default subprocess mode every job and the server run in worker
// processes of this program, so the writers talk to a server in another
// process. The server listens on 127.0.0.1: all jobs must run on this
// machine. Most of that mode's wall time is the server waiting for its
// stop flag, which a service in a worker process looks for every
// Config.ServicePollInterval (1 s by default).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem/local"
	"github.com/gafferhq/gaffer/examples/service/kv"
)

func main() {
	gaffer.ServeWorker() // a worker process runs one job (or hosts the server) here and exits

	n := flag.Int("n", 20, "number of keys, one writer job each")
	mode := flag.String("mode", "subprocess", "how jobs run: inprocess or subprocess")
	store := flag.String("store", "", "job store file (default: a fresh temporary file, removed at the end)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, *n, *mode, *store)
	stop() // before os.Exit, which runs no deferred call
	if err != nil {
		fmt.Fprintln(os.Stderr, "service:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, n int, mode, store string) error {
	if n < 0 {
		return fmt.Errorf("-n %d: want 0 or more", n)
	}
	opts := local.Options{}
	switch mode {
	case "inprocess":
	case "subprocess":
		opts.Mode = local.Subprocess
	default:
		return fmt.Errorf("-mode %q: want inprocess or subprocess", mode)
	}
	if store == "" {
		dir, err := os.MkdirTemp("", "gaffer-service-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		store = filepath.Join(dir, "service.db")
	}
	// Workers start in their own folders: give them an absolute path.
	store, err := filepath.Abs(store)
	if err != nil {
		return err
	}
	bs, err := local.New(opts)
	if err != nil {
		return err
	}
	defer bs.Shutdown(context.Background())
	leader, err := gaffer.NewLeader(gaffer.Config{Store: store, BatchSystem: bs})
	if err != nil {
		return err
	}
	defer leader.Close()

	start := time.Now()
	sum, err := gaffer.Run(ctx, leader, kv.Root.New(n))
	if err != nil {
		return err
	}
	took := time.Since(start)
	fmt.Println(sum)
	// A -store that holds a finished workflow gives its stored result
	// back at once: the counts say what this run did. The service is
	// issued like a job but is not counted among the succeeded jobs.
	st := leader.Stats()
	fmt.Printf("leader pid %d; %d issued (jobs and the service), %d jobs succeeded, in %v (%s mode)\n",
		os.Getpid(), st.Attempts, st.Successes, took.Round(time.Millisecond), mode)
	return nil
}
