package gaffertest

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/internal/procs"
)

// fanOut: twenty children and a join that all of them precede; every
// job runs once, the join after all the children, and the value is
// right.
func (e env) fanOut(t *testing.T) {
	const n = 20
	w := e.leader(t, e.dir(t), "1")
	ctx, cancel := context.WithTimeout(t.Context(), e.timeout)
	defer cancel()
	got, err := gaffer.Run(ctx, w.l, FanOut.New(n))
	require.NoError(t, err)
	want := 0
	for i := range n {
		want += i * i
	}
	require.Equal(t, want, got)
	marks := readMarks(t, w.marks)
	require.Equal(t, n, count(marks, "square"), "every child ran once:%s", lines(marks))
	require.Equal(t, 1, count(marks, "sum"), "the join ran once:%s", lines(marks))
	require.Equal(t, "sum", marks[len(marks)-1].what, "the join ran after every child:%s", lines(marks))
	w.requireNothingIssued(t)
}

// failure: a job that fails once is retried and succeeds; a job that
// fails every attempt ends the workflow with a *FailedJobsError that
// names it with its error and its log, and its successor never runs.
func (e env) failure(t *testing.T) {
	w := e.leader(t, e.dir(t), "1")
	ctx, cancel := context.WithTimeout(t.Context(), e.timeout)
	defer cancel()
	_, err := gaffer.Run(ctx, w.l, Failing.New(struct{}{}))
	var fe *gaffer.FailedJobsError
	require.ErrorAs(t, err, &fe)
	require.Len(t, fe.Jobs, 1, "only doomed failed: %v", err)
	require.Equal(t, "doomed", fe.Jobs[0].Name)
	require.Equal(t, 2, fe.Jobs[0].Tries, "doomed was retried once")
	require.Contains(t, fe.Jobs[0].Err, "doomed on purpose")
	require.GreaterOrEqual(t, fe.Skipped, 1, "never was skipped")
	marks := readMarks(t, w.marks)
	var flaky, doomed []int
	for _, m := range marks {
		switch m.what {
		case "flaky":
			flaky = append(flaky, m.attempt)
		case "doomed":
			doomed = append(doomed, m.attempt)
		}
	}
	slices.Sort(flaky)
	slices.Sort(doomed)
	require.Equal(t, []int{1, 2}, flaky, "flaky ran twice, as attempts 1 and 2:%s", lines(marks))
	require.Equal(t, []int{1, 2}, doomed, "doomed ran twice:%s", lines(marks))
	require.Zero(t, count(marks, "never"), "a job after a failed one never runs")
	w.requireNothingIssued(t)
}

// cancel: cancelling a workflow while its jobs run kills them (they never
// end, and their processes are gone), leaves nothing issued, and is
// recorded: a later leader on the same store does not resume it.
func (e env) cancel(t *testing.T) {
	dir := e.dir(t)
	w := e.leader(t, dir, "1")
	ctx, cancel := context.WithTimeout(t.Context(), e.timeout)
	defer cancel()
	in := []SleepInput{{For: time.Hour, Value: 1}, {For: time.Hour, Value: 2}, {For: time.Hour, Value: 3}}
	done := make(chan error, 1)
	go func() {
		_, err := gaffer.Run(ctx, w.l, Sleepers.New(in))
		done <- err
	}()
	e.waitMarks(t, w, "every sleeper to start", done, func(m []markLine) bool { return count(m, "start") == len(in) })
	w.l.CancelWorkflow()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		t.Fatal("Run did not return after CancelWorkflow")
	}
	var ce *gaffer.CancelledError
	require.ErrorAs(t, err, &ce)
	require.True(t, ce.Workflow)
	w.requireNothingIssued(t)
	marks := readMarks(t, w.marks)
	require.Zero(t, count(marks, "end"), "a cancelled job never ends:%s", lines(marks))
	e.requireProcessesGone(t, marks)

	w.close()
	w2 := e.leader(t, dir, "2")
	_, err = gaffer.Run(ctx, w2.l, Sleepers.New(in))
	require.ErrorIs(t, err, gaffer.ErrCancelled, "a cancelled workflow stays cancelled")
	require.Equal(t, len(in), count(readMarks(t, w.marks), "start"), "nothing ran again")
}

// waitMarks waits until the marks satisfy cond, failing if Run ends first.
func (e env) waitMarks(t *testing.T, w *workflow, what string, done <-chan error, cond func([]markLine) bool) {
	t.Helper()
	deadline := time.Now().Add(e.timeout)
	for !cond(readMarks(t, w.marks)) {
		select {
		case err := <-done:
			t.Fatalf("Run ended (%v) before %s:%s", err, what, lines(readMarks(t, w.marks)))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s:%s", what, lines(readMarks(t, w.marks)))
		}
	}
}

// requireNothingIssued: once a run ends, the batch system holds none of
// its jobs.
func (w *workflow) requireNothingIssued(t *testing.T) {
	t.Helper()
	issued, err := w.bs.Issued(t.Context())
	require.NoError(t, err)
	require.Empty(t, issued, "jobs still issued after the run ended")
}

// requireProcessesGone: the worker processes that marked these lines
// are gone (soon: a killed process takes a moment to die).
func (e env) requireProcessesGone(t *testing.T, marks []markLine) {
	t.Helper()
	if e.remote || !procs.Visible {
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, m := range marks {
		if m.pid == os.Getpid() {
			continue // in-process jobs
		}
		for procs.Alive(m.pid) {
			if time.Now().After(deadline) {
				t.Fatalf("the worker of job %d (pid %d) still runs after the run ended", m.job, m.pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
