package gaffer_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gafferhq/gaffer"
)

// exSmall asks for little, so that many jobs run at once on one machine.
var exSmall = []gaffer.JobOption{gaffer.Cores(0.1), gaffer.Memory("16Mi"), gaffer.Disk("1Mi")}

// exSquare squares its input.
var exSquare = gaffer.MustRegister("example.square", func(ctx context.Context, jc *gaffer.JobContext, x int) (int, error) {
	return x * x, nil
}, exSmall...)

// exSum adds its inputs.
var exSum = gaffer.MustRegister("example.sum", func(ctx context.Context, jc *gaffer.JobContext, xs []int) (int, error) {
	total := 0
	for _, x := range xs {
		total += x
	}
	return total, nil
}, exSmall...)

// exSumOfSquares fans out: one child per number squares it, and a
// follow-on, which runs once every child has finished, collects their
// results and adds them up. The job's own value is the follow-on's.
var exSumOfSquares = gaffer.MustRegister("example.sumofsquares", func(ctx context.Context, jc *gaffer.JobContext, n int) (int, error) {
	squares := make([]gaffer.Input[int], n)
	for i := range n {
		sq := exSquare.New(i + 1)
		jc.AddChild(sq)
		squares[i] = sq.Result()
	}
	sum := exSum.NewFrom(gaffer.Collect(squares...))
	jc.AddFollowOn(sum)
	return gaffer.Forward(jc, sum.Result())
}, exSmall...)

// A fan-out and fan-in: children compute in parallel, a follow-on takes
// all their results through Collect, and Forward makes its value the
// workflow's.
func ExampleCollect() {
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

	sum, err := gaffer.Run(context.Background(), leader, exSumOfSquares.New(10))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("1² + 2² + … + 10² =", sum)
	fmt.Println("jobs run:", leader.Stats().Successes)
	// Output:
	// 1² + 2² + … + 10² = 385
	// jobs run: 12
}
