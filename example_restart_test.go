package gaffer_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/gafferhq/gaffer"
)

// exRestartRuns counts the runs of each step, by name.
var exRestartRuns struct {
	sync.Mutex
	n map[string]int
}

// exRestartStep is a step of a pipeline. "parse" fails the first time, as
// if its input were bad until someone fixed it; it has no retries.
var exRestartStep = gaffer.MustRegister("example.restart.step", func(ctx context.Context, jc *gaffer.JobContext, name string) (string, error) {
	exRestartRuns.Lock()
	defer exRestartRuns.Unlock()
	exRestartRuns.n[name]++
	if name == "parse" && exRestartRuns.n[name] == 1 {
		return "", errors.New("bad input")
	}
	return name + " done", nil
}, append(exSmall, gaffer.Retries(0))...)

// exRestartPipeline builds the workflow: download and parse, then report.
func exRestartPipeline() *gaffer.Job[string] {
	step := func(name string) *gaffer.Job[string] { return exRestartStep.New(name, gaffer.Name(name)) }
	root := step("pipeline")
	root.AddChild(step("download"))
	root.AddChild(step("parse"))
	root.AddFollowOn(step("report"))
	return root
}

// A workflow that failed is not lost: once the cause is fixed, running it
// again on the same store re-runs the failed job, with fresh tries, and
// the jobs skipped because of it; what succeeded is not run again.
func ExampleRun_restart() {
	dir, err := os.MkdirTemp("", "gaffer-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	cfg := gaffer.Config{Store: filepath.Join(dir, "workflow.db")}
	exRestartRuns.n = map[string]int{}

	for run := 1; run <= 2; run++ { // as if the program ran twice
		leader, err := gaffer.NewLeader(cfg)
		if err != nil {
			fmt.Println(err)
			return
		}
		got, err := gaffer.Run(context.Background(), leader, exRestartPipeline())
		var failed *gaffer.FailedJobsError
		switch {
		case errors.As(err, &failed):
			fmt.Printf("run %d: %s failed (%s); %d skipped\n", run, failed.Jobs[0].Name, failed.Jobs[0].Err, failed.Skipped)
		case err != nil:
			fmt.Printf("run %d: %v\n", run, err)
		default:
			fmt.Printf("run %d: %s\n", run, got)
		}
		leader.Close()
	}
	for _, name := range []string{"pipeline", "download", "parse", "report"} {
		fmt.Printf("%s ran %d time(s)\n", name, exRestartRuns.n[name])
	}
	// Output:
	// run 1: parse failed (bad input); 1 skipped
	// run 2: pipeline done
	// pipeline ran 1 time(s)
	// download ran 1 time(s)
	// parse ran 2 time(s)
	// report ran 1 time(s)
}
