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
// Grid Engine job.
func TestFanOutOnGridEngine(t *testing.T) {
	needCluster(t)
	const n = 30
	prefix := uniquePrefix("fan")
	bs := newGE(t, prefix)
	l, _ := newLeader(t, gaffer.Config{BatchSystem: bs, NoSync: true})
	start := time.Now()
	sum, err := gaffer.Run(t.Context(), l, fanout.Root.New(n))
	took := time.Since(start)
	require.NoError(t, err)
	require.Equal(t, n*(n-1)/2, sum)
	st := l.Stats()
	require.Equal(t, n+2, st.Attempts, "one Grid Engine job per gaffer job")
	require.Equal(t, n+2, st.Successes)
	t.Logf("%d jobs in %v (3 stages: root, %d leaves at once, sum), poll %v", n+2, took.Round(time.Millisecond), n, pollInterval)
	require.Empty(t, jobsOf(t, prefix, false), "no Grid Engine job is left")
}

// A failing job ends the workflow with a *FailedJobsError that names it,
// with its error and the tail of its log, after its retry; a worker that
// exits 7 is reported with its exit status from accounting.
func TestFailedJobOnGridEngine(t *testing.T) {
	needCluster(t)
	bs := newGE(t, uniquePrefix("fail"))
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
	require.Equal(t, "ge.fail", f.Kind)
	require.Equal(t, 2, f.Tries, "one retry (RetryCount 1)")
	require.Contains(t, f.Err, "deliberate failure 42")
	require.Contains(t, f.LogTail, "fail says on stderr: about to fail, attempt 2", "the tail is the last attempt's log")

	x := byName["the-exiter"]
	require.Equal(t, "ge.exit", x.Kind)
	require.Equal(t, 1, x.Tries, "Retries(0)")
	require.Contains(t, x.Err, "exit code 7")
	require.Contains(t, x.Err, "Grid Engine job", "the adapter's message is part of the error")
	require.Contains(t, x.LogTail, "exit says on stderr: exiting with 7")

	require.Equal(t, 1, fe.Skipped, "the sum did not run")
}

// Jobs that outlive their h_rt are killed by Grid Engine within seconds
// and reported killed, with h_rt named in their error, as Slurm's TIMEOUT
// is. h_rt is enforced with SIGKILL: neither job gets to write a result,
// whether it ignores its context or not.
func TestTimeLimitOnGridEngine(t *testing.T) {
	needCluster(t)
	prefix := uniquePrefix("time")
	bs := newGE(t, prefix)
	l, _ := newLeader(t, gaffer.Config{BatchSystem: bs, NoSync: true})
	start := time.Now()
	_, err := gaffer.Run(t.Context(), l, TimeRoot.New(10*time.Minute))
	took := time.Since(start)
	t.Logf("ended after %v:\n%v", took.Round(time.Millisecond), err)
	var fe *gaffer.FailedJobsError
	require.ErrorAs(t, err, &fe)
	require.Less(t, took, 3*time.Minute, "the time limit, not the 10 min sleep, ended the jobs")
	kinds := map[string]gaffer.FailedJob{}
	for _, j := range fe.Jobs {
		kinds[j.Kind] = j
	}
	for kind, said := range map[string]string{"ge.stubborn": "stubborn: sleeping", "ge.polite": "polite: sleeping"} {
		j, ok := kinds[kind]
		require.True(t, ok, "%s failed", kind)
		require.Equal(t, 1, j.Tries, kind)
		require.Contains(t, j.Err, "killed", kind)
		require.Contains(t, j.Err, "h_rt time limit of 0:00:02", "%s: the limit that ended it is named", kind)
		require.Contains(t, j.Err, "exit code 137", kind)
		require.Contains(t, j.LogTail, said, "%s: its log up to the kill", kind)
	}
	require.Empty(t, jobsOf(t, prefix, false))
}

// Cancelling Run's context while Grid Engine jobs run: Run returns
// context.Canceled, and afterwards qstat lists no job of the workflow.
func TestCancelOnGridEngine(t *testing.T) {
	needCluster(t)
	prefix := uniquePrefix("cancel")
	bs := newGE(t, prefix)
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
	waitFor(t, 90*time.Second, "every leaf to start", func() bool {
		return countMarks(readMarks(t, marks), "start") == len(steps)
	})
	require.Len(t, jobsOf(t, prefix, true), len(steps), "the leaves run in Grid Engine")
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
	require.Empty(t, jobsOf(t, prefix, false), "no Grid Engine job of the workflow is left")
	require.Zero(t, countMarks(readMarks(t, marks), "end"), "no leaf ran to its end")
}
