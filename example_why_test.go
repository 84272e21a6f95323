package gaffer_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gafferhq/gaffer"
)

// exWhyStep does nothing but return its name.
var exWhyStep = gaffer.MustRegister("example.why.step", func(ctx context.Context, jc *gaffer.JobContext, name string) (string, error) {
	return name, nil
}, exSmall...)

// exWhyRoot adds an "align" child and a "report" follow-on, which waits
// for align's whole subtree.
var exWhyRoot = gaffer.MustRegister("example.why.root", func(ctx context.Context, jc *gaffer.JobContext, _ struct{}) (string, error) {
	jc.AddChild(exWhyStep.New("align", gaffer.Name("align")))
	jc.AddFollowOn(exWhyStep.New("report", gaffer.Name("report")))
	return "root", nil
}, exSmall...)

// Why says, for any job, where it stands and what it waits for; Status
// counts where the live jobs stand. Both are safe to call while Run runs;
// a stepped run makes the moment to look at exact.
func ExampleLeader_Why() {
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
	if err := leader.Start(ctx, exWhyRoot.New(struct{}{}, gaffer.Name("pipeline"))); err != nil {
		fmt.Println(err)
		return
	}
	// Run the root alone: it adds align and report. Jobs are numbered in
	// the order they join the graph: the root is j1, align j2, report j3.
	// Align is ready; RunOneJob issues nothing more until it is called.
	if _, err := leader.RunOneJob(ctx); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(leader.Status())
	fmt.Println("j1:", leader.Why(1))
	fmt.Println("j3:", leader.Why(3))

	// Run the rest.
	for {
		id, err := leader.RunOneJob(ctx)
		if err != nil {
			fmt.Println(err)
			return
		}
		if id == 0 {
			break // the workflow has ended
		}
	}
	fmt.Println("j3:", leader.Why(3))
	st := leader.Status()
	fmt.Println("finished:", st.Finished, "succeeded:", st.Succeeded)
	// Output:
	// 3 live, 1 ready, 0 issued, 0 in backoff, 0 failed, 0 skipped, 0 services
	// j1: body done; waiting for 1 child subtree(s)
	// j3: waiting for 1 of 1 predecessor(s): [pipeline (j1)]
	// j3: done (or never existed)
	// finished: true succeeded: true
}
