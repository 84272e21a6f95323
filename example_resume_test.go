package gaffer_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/gafferhq/gaffer"
)

// exResumeCubes counts the cubes computed, by every leader.
var exResumeCubes atomic.Int32

var exResumeCube = gaffer.MustRegister("example.resume.cube", func(ctx context.Context, jc *gaffer.JobContext, x int) (int, error) {
	exResumeCubes.Add(1)
	return x * x * x, nil
}, exSmall...)

// exResumeRoot cubes 1..n in children and sums the cubes in a follow-on.
var exResumeRoot = gaffer.MustRegister("example.resume.root", func(ctx context.Context, jc *gaffer.JobContext, n int) (int, error) {
	cubes := make([]gaffer.Input[int], n)
	for i := range n {
		c := exResumeCube.New(i + 1)
		jc.AddChild(c)
		cubes[i] = c.Result()
	}
	sum := exSum.NewFrom(gaffer.Collect(cubes...)) // exSum: example_fanout_test.go
	jc.AddFollowOn(sum)
	return gaffer.Forward(jc, sum.Result())
}, exSmall...)

// The store keeps the workflow as it goes: a leader that stops part way
// (here after two jobs; in life a crash, a reboot, Run's context
// cancelled) leaves a store that the next leader resumes, without running
// again the jobs that finished.
func ExampleRun_resume() {
	dir, err := os.MkdirTemp("", "gaffer-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	cfg := gaffer.Config{Store: filepath.Join(dir, "workflow.db")}
	ctx := context.Background()
	exResumeCubes.Store(0)

	first, err := gaffer.NewLeader(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := first.Start(ctx, exResumeRoot.New(3)); err != nil {
		fmt.Println(err)
		return
	}
	for range 2 { // the root, then one cube
		if _, err := first.RunOneJob(ctx); err != nil {
			fmt.Println(err)
			return
		}
	}
	first.Close()
	fmt.Println("cubes computed by the first leader:", exResumeCubes.Load())

	// The program starts again and runs the same workflow: it resumes.
	second, err := gaffer.NewLeader(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer second.Close()
	sum, err := gaffer.Run(ctx, second, exResumeRoot.New(3))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("1³ + 2³ + 3³ =", sum)
	// The second leader ran the two cubes left and the sum; not the root,
	// nor the cube the first leader computed.
	fmt.Println("jobs run by the second leader:", second.Stats().Successes)
	fmt.Println("cubes computed in all:", exResumeCubes.Load())
	// Output:
	// cubes computed by the first leader: 1
	// 1³ + 2³ + 3³ = 36
	// jobs run by the second leader: 3
	// cubes computed in all: 3
}
