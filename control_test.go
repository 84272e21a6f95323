package gaffer_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/services"
)

const envRequestCancel = "GAFFER_TEST_REQUEST_CANCEL"

// blocker signals that it runs, then waits to be killed or released.
type blockIn struct {
	Test string
	Name string
}

var (
	blockStarted = map[string]chan struct{}{}
	blockKilled  atomic.Int32
)

var Block = gaffer.MustRegister("test.block", func(ctx context.Context, jc *gaffer.JobContext, in blockIn) (string, error) {
	record(in.Test, "block:"+in.Name)
	if ch := blockStarted[in.Test+"/"+in.Name]; ch != nil {
		close(ch)
	}
	select {
	case <-ctx.Done():
		blockKilled.Add(1)
		return "", ctx.Err()
	case <-time.After(time.Minute):
		return in.Name, nil
	}
})

// Cancelling a job kills it and cancels its subtree; its siblings finish;
// its ancestors end cancelled, not failed.
func TestCancelJobSubtree(t *testing.T) {
	const test = "cancel-job"
	resetTrace(test)
	started := make(chan struct{})
	blockStarted[test+"/b"] = started
	l, _ := newLeader(t, testOpts{})
	root := step(test, "root")
	b := Block.New(blockIn{test, "b"})
	root.AddChild(b)
	b.AddChild(step(test, "under-b"))
	root.AddChild(step(test, "sibling"))
	root.AddFollowOn(step(test, "after"))

	killed := blockKilled.Load()
	done := make(chan error, 1)
	go func() { _, err := l.Run(t.Context(), root); done <- err }()
	<-started
	l.Cancel(2) // b: root is j1, b j2
	err := <-done
	require.ErrorIs(t, err, gaffer.ErrCancelled)
	var ce *gaffer.CancelledError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, []string{"test.block (j2)"}, ce.Jobs)
	require.Equal(t, killed+1, blockKilled.Load(), "the running job was killed")
	s := steps(test)
	require.Contains(t, s, "sibling")
	require.NotContains(t, s, "under-b")
	require.NotContains(t, s, "after", "the root's follow-on never runs")
	require.NotErrorIs(t, err, gaffer.ErrJobsFailed)
}

// Another process cancels the whole workflow through the work
// directory; the store records it, and a later run does not resume it.
func TestRequestCancelWorkflowFromAnotherProcess(t *testing.T) {
	const test = "cancel-wf"
	resetTrace(test)
	started := make(chan struct{})
	blockStarted[test+"/x"] = started
	l, store := newLeader(t, testOpts{cfg: func(c *gaffer.Config) { c.ControlInterval = 20 * time.Millisecond }})
	root := step(test, "root")
	root.AddChild(Block.New(blockIn{test, "x"}))
	done := make(chan error, 1)
	go func() { _, err := l.Run(t.Context(), root); done <- err }()
	<-started

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envRequestCancel+"="+store+".work")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)

	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the leader did not act on the request")
	}
	require.ErrorIs(t, err, gaffer.ErrCancelled)
	entries, _ := os.ReadDir(filepath.Join(store+".work", "control"))
	require.Empty(t, entries, "the request is removed once taken")
	require.NoError(t, l.Close())

	l2, err := gaffer.NewLeader(gaffer.Config{Store: store})
	require.NoError(t, err)
	defer l2.Close()
	_, err = l2.Run(t.Context(), nil)
	require.ErrorIs(t, err, gaffer.ErrCancelled, "a cancelled workflow stays cancelled")
}

// requestCancelMain is the other process of the test above.
func requestCancelMain(workDir string) int {
	if err := gaffer.RequestCancelWorkflow(workDir); err != nil {
		return 1
	}
	return 0
}

// Jobs over a category's cap wait in the leader, and say why.
func TestCategoryLimit(t *testing.T) {
	var now, most atomic.Int32
	release := make(chan struct{})
	name := "test.cat-" + time.Now().Format("150405.000000000")
	limited := gaffer.MustRegister(name, func(ctx context.Context, jc *gaffer.JobContext, _ int) (int, error) {
		n := now.Add(1)
		defer now.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
		return 1, nil
	}, gaffer.Category("gpu", "user:alice"))
	l, _ := newLeader(t, testOpts{cfg: func(c *gaffer.Config) {
		c.CategoryLimits = map[string]int{"gpu": 2}
		c.PollInterval = 10 * time.Millisecond
	}})
	root := step("cat", "root")
	for i := range 5 {
		root.AddChild(limited.New(i))
	}
	require.NoError(t, l.Start(t.Context(), root))
	for range 50 {
		_, err := l.Step(t.Context(), 1)
		require.NoError(t, err)
		if l.Status().Issued == 2 {
			break
		}
	}
	require.Equal(t, 2, l.Status().Issued)
	held := 0
	for id := gaffer.JobID(2); id <= 6; id++ {
		if w := l.Why(id); w != "issued to the batch system" {
			require.Contains(t, w, `limit reached: category "gpu" has 2 of 2 issued`)
			held++
		}
	}
	require.Equal(t, 3, held)
	close(release)
	for {
		done, err := l.Step(t.Context(), 1)
		require.NoError(t, err)
		if done {
			break
		}
	}
	_, err := l.Result(t.Context())
	require.NoError(t, err)
	require.EqualValues(t, 2, most.Load())
}

// A stepped run: RunOneJob runs exactly one job at a time, and Result
// says when the workflow is not finished.
func TestRunOneJob(t *testing.T) {
	const test = "one-job"
	resetTrace(test)
	l, _ := newLeader(t, testOpts{})
	_, err := l.Result(t.Context())
	require.ErrorIs(t, err, gaffer.ErrNotFinished)
	root := step(test, "root")
	root.AddChild(step(test, "a"))
	root.AddChild(step(test, "b"))
	root.AddFollowOn(step(test, "c"))
	require.NoError(t, l.Start(t.Context(), root))
	_, err = l.Result(t.Context())
	require.ErrorIs(t, err, gaffer.ErrNotFinished)

	var ran []gaffer.JobID
	for {
		id, err := l.RunOneJob(t.Context())
		require.NoError(t, err)
		if id == 0 {
			break
		}
		ran = append(ran, id)
		require.Len(t, steps(test), len(ran), "one job per call")
	}
	require.Equal(t, []gaffer.JobID{1, 2, 3, 4}, ran)
	v, err := l.Result(t.Context())
	require.NoError(t, err)
	require.JSONEq(t, `"root"`, string(v))
}

// A leader stopped while a service runs leaves a store that a new leader
// resumes: the service is started again before the rest of its client's
// children run.
func TestResumeRestartsServices(t *testing.T) {
	const test = "svc-resume"
	resetTrace(test)
	started := make(chan struct{})
	blockStarted[test+"/first"] = started
	l, store := newLeader(t, testOpts{})
	root := step(test, "root")
	svc := TestSvc.New(svcIn{Test: test, Name: "db"})
	root.AddService(svc)
	first := Block.New(blockIn{test, "first"})
	root.AddChild(first)
	first.AddFollowOn(use(test, "then", svc.Result()))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { _, err := l.Run(ctx, root); done <- err }()
	<-started
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	require.NoError(t, l.Close())
	require.Contains(t, steps(test), "stop:db", "the service was stopped with the leader")

	delete(blockStarted, test+"/first")
	l2, _ := newLeader(t, testOpts{store: store})
	// The resumed Block job would wait a minute: cancel it, which
	// cancels its subtree; what matters is the service restarted first.
	go func() {
		for !contains(steps(test), 2, "block:first") {
			time.Sleep(5 * time.Millisecond)
		}
		l2.Cancel(2) // first: root is j1, its child j2
	}()
	_, err := l2.Run(t.Context(), nil)
	require.ErrorIs(t, err, gaffer.ErrCancelled)
	s := steps(test)
	starts := 0
	for _, x := range s {
		if x == "start:db" {
			starts++
		}
	}
	require.Equal(t, 2, starts, "started again by the new leader: %v", s)
	require.Equal(t, "stop:db", s[len(s)-1], "stopped at the end: %v", s)
}

// contains reports whether x occurs at least n times in s.
func contains(s []string, n int, x string) bool {
	for _, y := range s {
		if y == x {
			n--
		}
	}
	return n <= 0
}

// Every wait of a client's successors is explained while its service
// starts: the successor names its client and the service not started.
func TestWhyWaitingForService(t *testing.T) {
	const test = "why-svc"
	resetTrace(test)
	gate := make(chan struct{})
	name := "test.slow-svc-" + time.Now().Format("150405.000000000")
	slow := gaffer.MustRegisterService(name, func(ctx context.Context, jc *gaffer.JobContext, _ int) (services.Service[string], error) {
		return services.Funcs[string]{StartFunc: func(ctx context.Context) (string, error) {
			<-gate
			return "up", nil
		}}, nil
	})
	l, _ := newLeader(t, testOpts{cfg: func(c *gaffer.Config) { c.PollInterval = 10 * time.Millisecond }})
	root := step(test, "root")
	svc := slow.New(0)
	root.AddService(svc)
	root.AddChild(use(test, "user", svc.Result()))
	require.NoError(t, l.Start(t.Context(), root))
	// root j1, user j2, service j3.
	for range 100 {
		_, err := l.Step(t.Context(), 1)
		require.NoError(t, err)
		if strings.Contains(l.Why(3), "not yet started") {
			break
		}
	}
	require.Contains(t, l.Why(3), "service of root (j1), issued; not yet started")
	require.Contains(t, l.Why(1), "waiting for 1 of its services to start")
	require.Contains(t, l.Why(2), "its services have not all started")
	close(gate)
	for {
		done, err := l.Step(t.Context(), 1)
		require.NoError(t, err)
		if done {
			break
		}
	}
	require.Contains(t, steps(test), "use:user:up")
	require.Contains(t, l.Why(3), "done")
}

// A category with a cap of 0 holds its jobs for ever: the run ends at
// once with an error that says which limit holds them.
func TestCategoryCapZeroIsExplained(t *testing.T) {
	name := "test.cat0-" + time.Now().Format("150405.000000000")
	held := gaffer.MustRegister(name, func(ctx context.Context, jc *gaffer.JobContext, _ int) (int, error) {
		return 1, nil
	}, gaffer.Category("closed"))
	l, _ := newLeader(t, testOpts{cfg: func(c *gaffer.Config) { c.CategoryLimits = map[string]int{"closed": 0} }})
	root := step("cat0", "root")
	root.AddChild(held.New(0))
	_, err := l.Run(t.Context(), root)
	require.Error(t, err)
	require.Contains(t, err.Error(), `limit reached: category "closed" has 0 of 0 issued`)
}
