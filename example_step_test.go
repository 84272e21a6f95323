package gaffer_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gafferhq/gaffer"
)

// A stepped run: the program drives the leader one job at a time, as a
// test or an embedding event loop would, and reads the value at the end.
func ExampleLeader_RunOneJob() {
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

	ctx := context.Background()
	if err := leader.Start(ctx, exSumOfSquares.New(2)); err != nil {
		fmt.Println(err)
		return
	}
	for {
		id, err := leader.RunOneJob(ctx)
		if err != nil {
			fmt.Println(err)
			return
		}
		if id == 0 {
			break // the workflow has ended
		}
		fmt.Println("ran", id)
	}
	v, err := leader.Result(ctx)
	fmt.Println(string(v), err)
	// Output:
	// ran j1
	// ran j2
	// ran j3
	// ran j4
	// 5 <nil>
}

// exCheckpointPasses counts the runs of exFlakyStage's checkpoint.
var exCheckpointPasses int

// exFlakyPart fails the first time the workflow runs it.
var exFlakyPart = gaffer.MustRegister("example.checkpoint.part", func(ctx context.Context, jc *gaffer.JobContext, pass int) (string, error) {
	if pass == 1 {
		return "", fmt.Errorf("pass %d: the part fails", pass)
	}
	return fmt.Sprintf("pass %d: the part worked", pass), nil
}, append(exSmall, gaffer.Retries(0))...)

// exFlakyStage is a checkpoint: when its subtree fails, the subtree is
// thrown away and the stage runs again, making a fresh one.
var exFlakyStage = gaffer.MustRegister("example.checkpoint.stage", func(ctx context.Context, jc *gaffer.JobContext, _ struct{}) (string, error) {
	exCheckpointPasses++
	part := exFlakyPart.New(exCheckpointPasses)
	jc.AddChild(part)
	return gaffer.Forward(jc, part.Result())
}, append(exSmall, gaffer.Checkpoint(), gaffer.Retries(1))...)

// A checkpoint re-runs its subtree from itself: the failed part is not
// retried on its own (it has no retries); the stage runs again instead.
func ExampleCheckpoint() {
	dir, err := os.MkdirTemp("", "gaffer-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	leader, err := gaffer.NewLeader(gaffer.Config{Store: filepath.Join(dir, "workflow.db"), RetryBackoff: -1})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer leader.Close()

	exCheckpointPasses = 0
	v, err := gaffer.Run(context.Background(), leader, exFlakyStage.New(struct{}{}))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(v)
	fmt.Println("stage runs:", exCheckpointPasses)
	// Output:
	// pass 2: the part worked
	// stage runs: 2
}
