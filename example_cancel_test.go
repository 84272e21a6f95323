package gaffer_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gafferhq/gaffer"
)

// exCancelRunning receives the ID of each exLongJob once it runs.
var exCancelRunning = make(chan gaffer.JobID, 1)

// exLongJob runs until it is killed (a real job would do hours of work
// and watch ctx).
var exLongJob = gaffer.MustRegister("example.cancel.long", func(ctx context.Context, jc *gaffer.JobContext, _ struct{}) (string, error) {
	exCancelRunning <- jc.ID()
	<-ctx.Done()
	return "", ctx.Err()
}, exSmall...)

// exQuick finishes at once.
var exQuick = gaffer.MustRegister("example.cancel.quick", func(ctx context.Context, jc *gaffer.JobContext, s string) (string, error) {
	return s, nil
}, exSmall...)

// Leader.Cancel cancels a job with its subtree: the running job is killed,
// its child never runs, and the workflow ends with a *CancelledError, not
// a failure. Other jobs still run to their end.
func ExampleLeader_Cancel() {
	dir, err := os.MkdirTemp("", "gaffer-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	leader, err := gaffer.NewLeader(gaffer.Config{Store: filepath.Join(dir, "workflow.db")})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer leader.Close()

	root := exQuick.New("root")
	long := exLongJob.New(struct{}{}, gaffer.Name("long"))
	root.AddChild(long)
	long.AddChild(exQuick.New("never runs"))
	root.AddChild(exQuick.New("sibling"))

	// Cancel is safe to call from any goroutine while Run runs.
	go func() { leader.Cancel(<-exCancelRunning) }()
	_, err = gaffer.Run(context.Background(), leader, root)

	fmt.Println(errors.Is(err, gaffer.ErrCancelled), errors.Is(err, gaffer.ErrJobsFailed))
	var cancelled *gaffer.CancelledError
	if errors.As(err, &cancelled) {
		fmt.Println("cancelled:", cancelled.Jobs)
	}
	fmt.Println("jobs that succeeded:", leader.Stats().Successes)
	// Output:
	// true false
	// cancelled: [long (j2)]
	// jobs that succeeded: 2
}

// RequestCancelWorkflow asks a leader to end its workflow for good, from
// any process that sees its work directory: an operator's command-line
// tool, say. Here a goroutine stands for that other process. The store
// remembers: a later Run of the workflow returns ErrCancelled at once.
func ExampleRequestCancelWorkflow() {
	dir, err := os.MkdirTemp("", "gaffer-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	store := filepath.Join(dir, "workflow.db")
	// The leader looks for requests every ControlInterval, but only
	// between waits for job events, which last up to PollInterval: both
	// are 1 s by default, short here so that the example is quick.
	cfg := gaffer.Config{Store: store, ControlInterval: 10 * time.Millisecond, PollInterval: 10 * time.Millisecond}
	leader, err := gaffer.NewLeader(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer leader.Close()

	go func() {
		<-exCancelRunning
		// The work directory is Config.WorkDir; by default the store's
		// path plus ".work".
		if err := gaffer.RequestCancelWorkflow(store + ".work"); err != nil {
			fmt.Println(err)
		}
	}()
	_, err = gaffer.Run(context.Background(), leader, exLongJob.New(struct{}{}))
	var cancelled *gaffer.CancelledError
	if errors.As(err, &cancelled) {
		fmt.Println("the whole workflow was cancelled:", cancelled.Workflow)
	}
	leader.Close()

	// The same workflow, run again, is not resumed.
	again, err := gaffer.NewLeader(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer again.Close()
	_, err = gaffer.Run(context.Background(), again, exLongJob.New(struct{}{}))
	fmt.Println("run again:", errors.Is(err, gaffer.ErrCancelled))
	// Output:
	// the whole workflow was cancelled: true
	// run again: true
}
