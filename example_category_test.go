package gaffer_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/gafferhq/gaffer"
)

// exLicensed counts the exLicensedJob bodies running now, and the most
// that ever ran at once.
var exLicensed struct{ now, most atomic.Int32 }

// exLicensedJob uses a tool with two licences: its type puts every job of
// it in the "licence" category, which the leader caps.
var exLicensedJob = gaffer.MustRegister("example.category.licensed", func(ctx context.Context, jc *gaffer.JobContext, x int) (int, error) {
	n := exLicensed.now.Add(1)
	defer exLicensed.now.Add(-1)
	for most := exLicensed.most.Load(); n > most && !exLicensed.most.CompareAndSwap(most, n); most = exLicensed.most.Load() {
	}
	time.Sleep(20 * time.Millisecond) // the work, long enough for others to start beside it
	return 10 * x, nil
}, append(exSmall, gaffer.Category("licence"))...)

// exLicensedRun adds six licensed jobs and sums their results.
var exLicensedRun = gaffer.MustRegister("example.category.run", func(ctx context.Context, jc *gaffer.JobContext, n int) (int, error) {
	parts := make([]gaffer.Input[int], n)
	for i := range n {
		j := exLicensedJob.New(i + 1)
		jc.AddChild(j)
		parts[i] = j.Result()
	}
	sum := exSum.NewFrom(gaffer.Collect(parts...)) // exSum: example_fanout_test.go
	jc.AddFollowOn(sum)
	return gaffer.Forward(jc, sum.Result())
}, exSmall...)

// A category caps how many jobs of a kind run at once, whatever room the
// batch system has: jobs over the cap wait in the leader, in order. Here
// the machine could run all six licensed jobs together; at most two run.
func ExampleCategory() {
	dir, err := os.MkdirTemp("", "gaffer-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	leader, err := gaffer.NewLeader(gaffer.Config{
		Store:          filepath.Join(dir, "workflow.db"),
		CategoryLimits: map[string]int{"licence": 2},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer leader.Close()

	exLicensed.most.Store(0)
	sum, err := gaffer.Run(context.Background(), leader, exLicensedRun.New(6))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("sum:", sum)
	fmt.Println("most licensed jobs at once:", exLicensed.most.Load())
	// Output:
	// sum: 210
	// most licensed jobs at once: 2
}
