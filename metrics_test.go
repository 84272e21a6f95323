package gaffer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem"
)

// recorder is a Metrics receiver that keeps every event.
type recorder struct {
	mu      sync.Mutex
	issued  []gaffer.AttemptIssued
	ended   []gaffer.AttemptEnded
	commits []gaffer.Commit
}

func (r *recorder) AttemptIssued(e gaffer.AttemptIssued) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.issued = append(r.issued, e)
}

func (r *recorder) AttemptEnded(e gaffer.AttemptEnded) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended = append(r.ended, e)
}

func (r *recorder) Committed(e gaffer.Commit) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.commits = append(r.commits, e)
}

var metricsLeaf = gaffer.MustRegister("metrics.leaf", func(ctx context.Context, jc *gaffer.JobContext, i int) (int, error) {
	return i, nil
}, gaffer.Category("gpu", "user:bob"))

// metricsFlaky fails its first attempt.
var metricsFlaky = gaffer.MustRegister("metrics.flaky", func(ctx context.Context, jc *gaffer.JobContext, _ int) (int, error) {
	if jc.Attempt() == 1 {
		return 0, errors.New("flaky: first attempt fails")
	}
	return 0, nil
})

// metricsRoot adds n leaves and one flaky job.
var metricsRoot = gaffer.MustRegister("metrics.root", func(ctx context.Context, jc *gaffer.JobContext, n int) (int, error) {
	for i := range n {
		jc.AddChild(metricsLeaf.New(i))
	}
	jc.AddChild(metricsFlaky.New(0))
	return n, nil
})

// logLines decodes the JSON lines of a slog.JSONHandler.
func logLines(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(string(b)) {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		out = append(out, m)
	}
	return out
}

// Every attempt reaches the receiver once as issued and once as ended,
// with its job type, categories and batch system; a retry is attempt 2;
// each commit reports what it recorded and where the workflow stands.
// The leader's logs say the start, the failed attempt (Warn) and the end.
func TestMetricsReceiveEveryAttempt(t *testing.T) {
	const n = 20
	rec := &recorder{}
	var logs safeBuffer
	l, _ := newLeader(t, testOpts{cfg: func(c *gaffer.Config) {
		c.Metrics = rec
		c.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	}})
	got, err := gaffer.Run(t.Context(), l, metricsRoot.New(n))
	require.NoError(t, err)
	require.Equal(t, n, got)

	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.Len(t, rec.issued, n+3, "root, leaves, flaky twice")
	require.Len(t, rec.ended, n+3)
	type key struct {
		job     gaffer.JobID
		attempt int
	}
	issued := map[key]gaffer.AttemptIssued{}
	for _, e := range rec.issued {
		require.NotZero(t, e.Job)
		require.False(t, e.Time.IsZero())
		require.NotEmpty(t, e.BatchSystem)
		require.NotZero(t, e.BatchID)
		require.Positive(t, e.Requirements.Cores, "requirements come filled in")
		require.Equal(t, e.Kind == "metrics.flaky" && e.Attempt == 2, e.Retry(), "%+v", e)
		if e.Kind == "metrics.leaf" {
			require.Equal(t, "gpu,user:bob", e.Category)
		} else {
			require.Empty(t, e.Category)
		}
		issued[key{e.Job, e.Attempt}] = e
	}
	require.Len(t, issued, n+3, "each attempt issued once")
	failed := 0
	for _, e := range rec.ended {
		is, ok := issued[key{e.Job, e.Attempt}]
		require.True(t, ok, "ended attempt %+v was issued", e)
		require.Equal(t, is.Kind, e.Kind)
		require.Equal(t, is.Category, e.Category)
		require.Equal(t, is.BatchSystem, e.BatchSystem)
		require.False(t, e.Start.IsZero())
		require.False(t, e.End.Before(e.Start))
		require.False(t, e.Rescued)
		if !e.OK {
			failed++
			require.Equal(t, "metrics.flaky", e.Kind)
			require.Equal(t, 1, e.Attempt)
			require.Contains(t, e.Error, "first attempt fails")
		} else {
			require.Empty(t, e.Error)
		}
	}
	require.Equal(t, 1, failed)

	require.NotEmpty(t, rec.commits)
	var sum gaffer.Commit
	for i, c := range rec.commits {
		if i > 0 {
			require.Greater(t, c.Commits, rec.commits[i-1].Commits)
			require.False(t, c.Time.Before(rec.commits[i-1].Time))
		}
		sum.Ended += c.Ended
		sum.Succeeded += c.Succeeded
		sum.Failed += c.Failed
	}
	require.Equal(t, len(rec.ended), sum.Ended)
	require.Equal(t, n+2, sum.Succeeded)
	require.Equal(t, 1, sum.Failed)
	last := rec.commits[len(rec.commits)-1]
	require.True(t, last.Status.Finished && last.Status.Succeeded, "%+v", last.Status)
	require.LessOrEqual(t, last.Commits, l.Stats().Commits)

	lines := logLines(t, logs.Bytes())
	var msgs []string
	for _, m := range lines {
		if m["level"] != "DEBUG" {
			msgs = append(msgs, m["level"].(string)+" "+m["msg"].(string))
		}
		switch m["msg"] {
		case "job attempt failed; retrying":
			require.Equal(t, "WARN", m["level"])
			require.Equal(t, "metrics.flaky", m["job_kind"])
			require.EqualValues(t, 1, m["attempt"])
			require.Contains(t, m["err"], "first attempt fails")
			require.NotEmpty(t, m["reason"])
		case "workflow succeeded":
			require.EqualValues(t, n+2, m["jobs_succeeded"])
			require.EqualValues(t, n+3, m["attempts"])
			require.EqualValues(t, 1, m["failed_attempts"])
		}
	}
	require.Equal(t, []string{"INFO workflow started", "WARN job attempt failed; retrying", "INFO workflow succeeded"}, msgs)
}

// A job the leader rescues (the batch system lost it) ends, for the
// metrics, as a rescued failure.
func TestMetricsReportRescues(t *testing.T) {
	f := newFaulty(t)
	f.lose = func(spec batchsystem.JobSpec) bool {
		var n int
		_, err := fmtSscan(spec.JobID, &n)
		return err == nil && n%10 == 0 && spec.Attempt == 1 && spec.Kind == "cancel.leaf"
	}
	rec := &recorder{}
	l, _ := newLeader(t, testOpts{cfg: func(c *gaffer.Config) { c.BatchSystem = f; rescueConfig(c); c.Metrics = rec }})
	_, err := gaffer.Run(t.Context(), l, Gate.New(50))
	require.NoError(t, err)
	require.Positive(t, f.lost)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rescued, retries := 0, 0
	for _, e := range rec.ended {
		if e.Rescued {
			rescued++
			require.False(t, e.OK)
			require.Equal(t, "missing", e.Reason)
			require.Equal(t, "cancel.leaf", e.Kind)
		}
	}
	for _, e := range rec.issued {
		if e.Retry() {
			retries++
		}
	}
	require.Equal(t, f.lost, rescued)
	require.Equal(t, f.lost, retries, "each rescued job is retried once")
}

// A leader stopped before the end says so; the next one says what it
// found.
func TestLogsOfStopAndResume(t *testing.T) {
	var logs safeBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	l, store := newLeader(t, testOpts{cfg: func(c *gaffer.Config) { c.Logger = logger }})
	require.NoError(t, l.Start(t.Context(), metricsRoot.New(5)))
	id, err := l.RunOneJob(t.Context())
	require.NoError(t, err)
	require.NotZero(t, id)
	require.NoError(t, l.Close())

	l2, _ := newLeader(t, testOpts{store: store, cfg: func(c *gaffer.Config) { c.Logger = logger }})
	got, err := gaffer.Run[int](context.Background(), l2, nil)
	require.NoError(t, err)
	require.Equal(t, 5, got)

	byMsg := map[string]map[string]any{}
	for _, m := range logLines(t, logs.Bytes()) {
		byMsg[m["msg"].(string)] = m
	}
	stopped := byMsg["leader stopped before the workflow ended; run again to resume"]
	require.NotNil(t, stopped, "logs: %s", logs.Bytes())
	require.EqualValues(t, 1, stopped["jobs_succeeded"])
	require.EqualValues(t, 7, stopped["live_jobs"], "the root, 5 leaves and the flaky job")
	resumed := byMsg["workflow resumed"]
	require.NotNil(t, resumed)
	require.Equal(t, "running", resumed["stored_status"])
	require.EqualValues(t, 7, resumed["live_jobs"])
	require.EqualValues(t, 6, resumed["ready"])
	require.EqualValues(t, 2, resumed["epoch"])
	require.NotNil(t, byMsg["workflow succeeded"])
}

// safeBuffer is a bytes.Buffer for a logger that jobs' goroutines may use.
type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}
