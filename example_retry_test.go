package gaffer_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gafferhq/gaffer"
)

// exFlaky fails on its first try, as a job that met a busy server would,
// and works on the next. Retries(2) gives it up to three tries.
var exFlaky = gaffer.MustRegister("example.retry.flaky", func(ctx context.Context, jc *gaffer.JobContext, _ struct{}) (string, error) {
	if jc.Attempt() == 1 {
		return "", errors.New("server busy")
	}
	return fmt.Sprintf("worked on try %d", jc.Attempt()), nil
}, append(exSmall, gaffer.Retries(2))...)

// A failed job is retried, here at once (RetryBackoff -1; by default the
// leader waits 2 s, then three times longer each time).
func ExampleRetries() {
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

	got, err := gaffer.Run(context.Background(), leader, exFlaky.New(struct{}{}))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(got)
	st := leader.Stats()
	fmt.Printf("attempts %d, failures %d, successes %d\n", st.Attempts, st.Failures, st.Successes)
	// Output:
	// worked on try 2
	// attempts 2, failures 1, successes 1
}

// exBroken always fails; with Retries(1) it has two tries.
var exBroken = gaffer.MustRegister("example.retry.broken", func(ctx context.Context, jc *gaffer.JobContext, url string) (string, error) {
	return "", fmt.Errorf("fetch %s: connection refused", url)
}, append(exSmall, gaffer.Retries(1))...)

// exReport would summarise what exBroken fetched.
var exReport = gaffer.MustRegister("example.retry.report", func(ctx context.Context, jc *gaffer.JobContext, page string) (string, error) {
	return "report on " + page, nil
}, exSmall...)

// A job that fails on every try fails totally: the jobs after it are
// skipped, and Run's error, a *FailedJobsError, names the failed job with
// its tries and its last error.
func ExampleFailedJobsError() {
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

	fetch := exBroken.New("http://example.invalid/", gaffer.Name("fetch"))
	fetch.AddChild(exReport.NewFrom(fetch.Result()))
	_, err = gaffer.Run(context.Background(), leader, fetch)

	fmt.Println(errors.Is(err, gaffer.ErrJobsFailed))
	var failed *gaffer.FailedJobsError
	if errors.As(err, &failed) {
		for _, j := range failed.Jobs {
			fmt.Printf("%s failed %d times; last: %s\n", j.Name, j.Tries, j.Err)
		}
		fmt.Println("skipped:", failed.Skipped)
	}
	// Output:
	// true
	// fetch failed 2 times; last: fetch http://example.invalid/: connection refused
	// skipped: 1
}
