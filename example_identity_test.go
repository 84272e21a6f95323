package gaffer_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gafferhq/gaffer"
)

// exGreet greets someone.
var exGreet = gaffer.MustRegister("example.identity.greet", func(ctx context.Context, jc *gaffer.JobContext, who string) (string, error) {
	return "hello, " + who, nil
}, exSmall...)

// A store holds one workflow. Run with the same root (type and input)
// resumes it, or, once it has finished, returns its stored value without
// running anything. A root with another input is refused with
// ErrWorkflowMismatch rather than mixed into the stored workflow: use a
// new store for a new workflow.
func ExampleRun_workflowMismatch() {
	dir, err := os.MkdirTemp("", "gaffer-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	cfg := gaffer.Config{Store: filepath.Join(dir, "workflow.db")}
	ctx := context.Background()

	for _, who := range []string{"alice", "alice", "bob"} {
		leader, err := gaffer.NewLeader(cfg)
		if err != nil {
			fmt.Println(err)
			return
		}
		got, err := gaffer.Run(ctx, leader, exGreet.New(who))
		switch {
		case errors.Is(err, gaffer.ErrWorkflowMismatch):
			fmt.Printf("%s: refused: the store holds another workflow\n", who)
		case err != nil:
			fmt.Printf("%s: %v\n", who, err)
		default:
			fmt.Printf("%s: %q, jobs run: %d\n", who, got, leader.Stats().Successes)
		}
		leader.Close()
	}
	// Output:
	// alice: "hello, alice", jobs run: 1
	// alice: "hello, alice", jobs run: 0
	// bob: refused: the store holds another workflow
}
