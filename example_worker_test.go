package gaffer_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem/local"
)

// exShouted is what exShout returns.
type exShouted struct {
	Text string
	PID  int
}

// exShout runs in a worker process: it returns its input in capitals
// and the ID of the process that ran it.
var exShout = gaffer.MustRegister("example.worker.shout", func(ctx context.Context, jc *gaffer.JobContext, s string) (exShouted, error) {
	return exShouted{Text: strings.ToUpper(s), PID: os.Getpid()}, nil
}, exSmall...)

// With the local batch system in Subprocess mode, each job runs in a
// worker process: this same program started again, which ServeWorker,
// called first thing in main, turns into a worker that runs one job and
// exits. (Here the program is the test binary, whose TestMain calls
// ServeWorker.) The worker reads its input from the job's folder in the
// work directory and writes its result there; it never opens the store.
func ExampleServeWorker() {
	dir, err := os.MkdirTemp("", "gaffer-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	workers, err := local.New(local.Options{Mode: local.Subprocess})
	if err != nil {
		fmt.Println(err)
		return
	}
	// The leader shuts down only a batch system it made itself.
	defer workers.Shutdown(ctx)
	leader, err := gaffer.NewLeader(gaffer.Config{Store: filepath.Join(dir, "workflow.db"), BatchSystem: workers})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer leader.Close()

	got, err := gaffer.Run(ctx, leader, exShout.New("hello from a worker"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(got.Text)
	fmt.Println("ran in another process:", got.PID != os.Getpid())
	// Output:
	// HELLO FROM A WORKER
	// ran in another process: true
}
