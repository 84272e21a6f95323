package leadertest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/examples/fanout/fanout"
)

// The fan-out example's workflow: a root, 30 leaves and a sum, each a
// Slurm job.
func TestFanOutOnSlurm(t *testing.T) {
	needCluster(t)
	const n = 30
	prefix := uniquePrefix("fan")
	bs := newSlurm(t, prefix)
	l, _ := newLeader(t, gaffer.Config{BatchSystem: bs, NoSync: true})
	start := time.Now()
	sum, err := gaffer.Run(t.Context(), l, fanout.Root.New(n))
	took := time.Since(start)
	require.NoError(t, err)
	require.Equal(t, n*(n-1)/2, sum)
	st := l.Stats()
	require.Equal(t, n+2, st.Attempts, "one Slurm job per gaffer job")
	require.Equal(t, n+2, st.Successes)
	t.Logf("%d jobs in %v (3 stages: root, %d leaves at once, sum), poll %v", n+2, took.Round(time.Millisecond), n, pollInterval)
	require.Empty(t, jobsOf(t, prefix, ""), "no Slurm job is left")
}

// A failing job ends the workflow with a *FailedJobsError that names it,
// with its error and the tail of its log, after its retry.
func TestFailedJobOnSlurm(t *testing.T) {
	needCluster(t)
	bs := newSlurm(t, uniquePrefix("fail"))
	l, _ := newLeader(t, gaffer.Config{BatchSystem: bs, NoSync: true, RetryCount: 1, RetryBackoff: -1})
	_, err := gaffer.Run(t.Context(), l, FailRoot.New("deliberate failure 42"))
	require.ErrorIs(t, err, gaffer.ErrJobsFailed)
	var fe *gaffer.FailedJobsError
	require.ErrorAs(t, err, &fe)
	t.Logf("the workflow's error:\n%v", err)
	require.Len(t, fe.Jobs, 2, "the failer and the exiter; not the root, which failed only because of them")
	byName := map[string]gaffer.FailedJob{}
	for _, j := range fe.Jobs {
		byName[j.Name] = j
	}

	f := byName["the-failer"]
	require.Equal(t, "lt.fail", f.Kind)
	require.Equal(t, 2, f.Tries, "one retry (RetryCount 1)")
	require.Contains(t, f.Err, "deliberate failure 42")
	require.Contains(t, f.LogTail, "fail says on stderr: about to fail, attempt 2", "the tail is the last attempt's log")
	require.Contains(t, f.LogTail, "fail logs through its logger")

	x := byName["the-exiter"]
	require.Equal(t, "lt.exit", x.Kind)
	require.Equal(t, 1, x.Tries, "Retries(0)")
	require.Contains(t, x.Err, "exit code 7")
	require.Contains(t, x.Err, "FAILED", "Slurm's state is part of the message")
	require.Contains(t, x.LogTail, "exit says on stderr: exiting with 7")

	require.Equal(t, 1, fe.Skipped, "the sum did not run")
	require.Contains(t, err.Error(), "the-failer")
	require.Contains(t, err.Error(), "the-exiter")
}

// A job that outlives its Slurm time limit is reported failed, with
// Slurm's TIMEOUT in its error. gaffer.Walltime(1s) becomes --time=0-00:00:01,
// which Slurm rounds up to one minute: its granularity. Slurm then checks
// time limits on its own schedule, and gives KillWait (5 s here) between
// SIGTERM and SIGKILL, so this takes about 65 s.
func TestTimeLimitOnSlurm(t *testing.T) {
	needCluster(t)
	if testing.Short() {
		t.Skip("takes over a minute: Slurm's time limits are whole minutes")
	}
	bs := newSlurm(t, uniquePrefix("time"))
	l, _ := newLeader(t, gaffer.Config{BatchSystem: bs, NoSync: true})
	start := time.Now()
	_, err := gaffer.Run(t.Context(), l, TimeRoot.New(10*time.Minute))
	took := time.Since(start)
	t.Logf("ended after %v:\n%v", took.Round(time.Millisecond), err)
	var fe *gaffer.FailedJobsError
	require.ErrorAs(t, err, &fe)
	require.Less(t, took, 4*time.Minute, "the time limit, not the 10 min sleep, ended the jobs")
	kinds := map[string]gaffer.FailedJob{}
	for _, j := range fe.Jobs {
		kinds[j.Kind] = j
	}
	s, ok := kinds["lt.stubborn"]
	require.True(t, ok, "the stubborn job failed")
	require.Equal(t, 1, s.Tries)
	require.Contains(t, s.Err, "TIMEOUT", "Slurm's reason reaches the error")
	require.Contains(t, s.LogTail, "stubborn: sleeping")
	// A job that stops when Slurm's SIGTERM cancels its context did not
	// finish: its worker leaves no result, so the failure is Slurm's
	// TIMEOUT, and the job's own words are in its log.
	p, ok := kinds["lt.polite"]
	require.True(t, ok, "the polite job failed")
	require.Contains(t, p.Err, "TIMEOUT", "Slurm's reason, not the job's 'context canceled'")
	require.Contains(t, p.LogTail, "polite stopped", "the job's own error is in its log")
	require.Contains(t, p.LogTail, "DUE TO TIME LIMIT", "Slurm's own line in the log says why")
}

// Cancelling Run's context while Slurm jobs run: Run returns
// context.Canceled, and afterwards squeue shows no job of the workflow.
func TestCancelOnSlurm(t *testing.T) {
	needCluster(t)
	prefix := uniquePrefix("cancel")
	bs := newSlurm(t, prefix)
	marks := filepath.Join(t.TempDir(), "marks")
	l, _ := newLeader(t, gaffer.Config{BatchSystem: bs, NoSync: true,
		WorkerEnv: map[string]string{envMarks: marks, envPhase: "1"}})
	steps := make([]Step, 6)
	for i := range steps {
		steps[i] = Step{Sleep: 5 * time.Minute, Value: i}
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type result struct {
		err error
		at  time.Time
	}
	done := make(chan result, 1)
	go func() {
		_, err := gaffer.Run(ctx, l, Steps.New(steps))
		done <- result{err, time.Now()}
	}()
	waitFor(t, 60*time.Second, "every leaf to start", func() bool {
		return countMarks(readMarks(t, marks), "start") == len(steps)
	})
	running := map[string]bool{}
	for _, j := range jobsOf(t, prefix, "RUNNING") {
		running[j.id] = true
	}
	for _, m := range readMarks(t, marks) {
		require.True(t, running[m.slurmID], "leaf %d runs in Slurm job %s of the workflow", m.job, m.slurmID)
	}
	cancelled := time.Now()
	cancel()
	var r result
	select {
	case r = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("Run did not return after its context was cancelled")
	}
	t.Logf("Run returned %v after the cancel: %v", r.at.Sub(cancelled).Round(time.Millisecond), r.err)
	require.ErrorIs(t, r.err, context.Canceled)
	require.Empty(t, jobsOf(t, prefix, ""), "no Slurm job of the workflow is left")
	require.Equal(t, len(steps), countMarks(readMarks(t, marks), "cancelled"), "every leaf saw its context end (scancel's SIGTERM)")
}

// Per-job overhead: a chain of jobs, each of which makes the next its
// child, so that exactly one job is in Slurm at any time. Total time over
// jobs is the time from one job's submission to the leader having its
// result and submitting the next.
func TestChainOverheadOnSlurm(t *testing.T) {
	needCluster(t)
	const n = 10
	bs := newSlurm(t, uniquePrefix("chain"))
	l, _ := newLeader(t, gaffer.Config{BatchSystem: bs, NoSync: true})
	start := time.Now()
	v, err := gaffer.Run(t.Context(), l, Chain.New(n))
	took := time.Since(start)
	require.NoError(t, err)
	require.Equal(t, 0, v)
	require.Equal(t, n, l.Stats().Attempts)
	t.Logf("chain of %d jobs in %v: %v per job, Slurm poll interval %v", n, took.Round(time.Millisecond), (took / n).Round(time.Millisecond), pollInterval)
}

// A workflow cancelled on Slurm can be resumed: a new leader on the same
// store finishes it with the right result. The jobs the cancel killed are
// the leader's own doing and should not count as failed attempts. One
// leaf stops on SIGTERM and writes a failed result; one sleeps through it
// until KillWait's SIGKILL and writes none.
func TestResumeAfterCancelOnSlurm(t *testing.T) {
	needCluster(t)
	prefix := uniquePrefix("resume")
	marks := filepath.Join(t.TempDir(), "marks")
	env := map[string]string{envMarks: marks, envPhase: "1"}
	steps := make([]Step, 4)
	for i := range steps {
		steps[i] = Step{Sleep: 4 * time.Second, Value: 1 << i}
	}
	steps[0].Stubborn, steps[0].Sleep = true, 10*time.Second // past KillWait (5 s)
	l1, store := newLeader(t, gaffer.Config{BatchSystem: newSlurm(t, prefix), NoSync: true, RetryBackoff: -1, WorkerEnv: env})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		waitFor(t, 60*time.Second, "every leaf to start", func() bool {
			return countMarks(readMarks(t, marks), "start") == len(steps)
		})
		cancel()
	}()
	_, err := gaffer.Run(ctx, l1, Steps.New(steps))
	require.ErrorIs(t, err, context.Canceled)
	require.NoError(t, l1.Close())
	require.Empty(t, jobsOf(t, prefix, ""), "no Slurm job of the workflow is left")

	env[envPhase] = "2"
	l2, _ := newLeader(t, gaffer.Config{Store: store, BatchSystem: newSlurm(t, prefix), NoSync: true, RetryBackoff: -1, WorkerEnv: env})
	sum, err := gaffer.Run(t.Context(), l2, Steps.New(steps))
	st := l2.Stats()
	t.Logf("second leader: %+v, err %v", st, err)
	require.NoError(t, err)
	require.Equal(t, sumOf(steps), sum)
	require.Equal(t, len(steps)+1, st.Attempts, "the leaves again, and the sum")
	for _, m := range readMarks(t, marks) {
		if m.what == "start" && m.phase == "2" {
			require.Equal(t, 1, m.attempt, "job %d: the cancelled attempt is not charged", m.job)
		}
	}
}
