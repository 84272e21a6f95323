package gaffer_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/batchsystem/local"
)

// faulty wraps a batch system and misbehaves on purpose: it loses jobs
// (runs them but never lists or reports them), hides some reports while
// still listing the job, reports jobs twice, and delays reports.
type faulty struct {
	batchsystem.BatchSystem
	lose    func(spec batchsystem.JobSpec) bool // lost: neither listed nor reported
	silence func(spec batchsystem.JobSpec) bool // listed, never reported
	twice   bool
	delay   time.Duration

	mu     sync.Mutex
	hidden map[batchsystem.ID]bool // lost jobs
	mute   map[batchsystem.ID]bool // silenced jobs
	again  []batchsystem.FinishedJob
	lost   int
}

func (f *faulty) InProcess() bool { return true }

func (f *faulty) Issue(ctx context.Context, spec batchsystem.JobSpec) (batchsystem.ID, error) {
	id, err := f.BatchSystem.Issue(ctx, spec)
	if err != nil {
		return id, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.lose != nil && f.lose(spec):
		f.hidden[id] = true
		f.lost++
	case f.silence != nil && f.silence(spec):
		f.mute[id] = true
	}
	return id, nil
}

func (f *faulty) Issued(ctx context.Context) ([]batchsystem.ID, error) {
	ids, err := f.BatchSystem.Issued(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.DeleteFunc(ids, func(id batchsystem.ID) bool { return f.hidden[id] }), err
}

func (f *faulty) Running(ctx context.Context) (map[batchsystem.ID]time.Duration, error) {
	r, err := f.BatchSystem.Running(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	for id := range f.hidden {
		delete(r, id)
	}
	for id := range f.mute {
		if _, ok := r[id]; !ok {
			r[id] = time.Hour // finished, but the system still says it runs
		}
	}
	return r, err
}

func (f *faulty) WaitFinished(ctx context.Context, maxWait time.Duration) (*batchsystem.FinishedJob, error) {
	f.mu.Lock()
	if len(f.again) > 0 {
		fin := f.again[0]
		f.again = f.again[1:]
		f.mu.Unlock()
		return &fin, nil
	}
	f.mu.Unlock()
	for {
		fin, err := f.BatchSystem.WaitFinished(ctx, maxWait)
		if fin == nil || err != nil {
			return fin, err
		}
		f.mu.Lock()
		drop := f.hidden[fin.ID] || f.mute[fin.ID]
		if !drop && f.twice {
			f.again = append(f.again, *fin)
		}
		f.mu.Unlock()
		if drop {
			continue
		}
		if f.delay > 0 {
			time.Sleep(f.delay)
		}
		return fin, nil
	}
}

func (f *faulty) Kill(ctx context.Context, ids []batchsystem.ID) error {
	f.mu.Lock()
	for _, id := range ids {
		delete(f.mute, id)
	}
	f.mu.Unlock()
	return f.BatchSystem.Kill(ctx, ids)
}

func newFaulty(t *testing.T) *faulty {
	inner, err := local.New(local.Options{Cores: 4, Memory: 8 << 30, Disk: 8 << 30})
	require.NoError(t, err)
	t.Cleanup(func() { inner.Shutdown(context.Background()) })
	return &faulty{BatchSystem: inner, hidden: map[batchsystem.ID]bool{}, mute: map[batchsystem.ID]bool{}}
}

func rescueConfig(c *gaffer.Config) {
	c.RescueInterval = 20 * time.Millisecond
	c.PollInterval = 10 * time.Millisecond
	c.MissingChecks = 3
}

// A batch system that silently loses a tenth of the jobs issued to it: the
// leader notices each one missing, counts it failed, retries it, and the
// workflow ends with the right result.
func TestLostJobsAreRescued(t *testing.T) {
	f := newFaulty(t)
	f.lose = func(spec batchsystem.JobSpec) bool {
		var n int
		_, err := fmtSscan(spec.JobID, &n)
		return err == nil && n%10 == 0 && spec.Attempt == 1 && spec.Kind == "cancel.leaf"
	}
	l, _ := newLeader(t, testOpts{cfg: func(c *gaffer.Config) { c.BatchSystem = f; rescueConfig(c) }})
	got, err := gaffer.Run(t.Context(), l, Gate.New(100))
	require.NoError(t, err)
	require.Equal(t, 100*99/2, got)
	require.Positive(t, f.lost)
	require.Equal(t, f.lost, l.Stats().Failures, "each lost job is one failed attempt")
}

// Slow blocks until it is killed on its first attempt, and returns at once
// on its second.
var Slow = gaffer.MustRegister("rescue.slow", func(ctx context.Context, jc *gaffer.JobContext, _ struct{}) (int, error) {
	if jc.Attempt() == 1 {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	return jc.Attempt(), nil
})

// A job that runs past the maximum job duration is killed and retried.
func TestOverLongJobIsKilledAndRetried(t *testing.T) {
	f := newFaulty(t)
	l, _ := newLeader(t, testOpts{cfg: func(c *gaffer.Config) {
		c.BatchSystem = f
		rescueConfig(c)
		c.MaxJobDuration = 100 * time.Millisecond
	}})
	got, err := gaffer.Run(t.Context(), l, Slow.New(struct{}{}))
	require.NoError(t, err)
	require.Equal(t, 2, got)
	require.Equal(t, 1, l.Stats().Failures)
}

// A job that the batch system lists as running but never reports is
// caught by the maximum job duration, and its failure names the reason.
func TestJobNeverReportedIsCaughtByMaxDuration(t *testing.T) {
	f := newFaulty(t)
	f.silence = func(spec batchsystem.JobSpec) bool { return spec.Kind == "test.add" }
	l, _ := newLeader(t, testOpts{cfg: func(c *gaffer.Config) {
		c.BatchSystem = f
		rescueConfig(c)
		c.MaxJobDuration = 50 * time.Millisecond
		c.RetryCount = gaffer.NoRetries
	}})
	_, err := l.Run(t.Context(), Add.New([]int{1, 2}, gaffer.Name("mute")))
	var fe *gaffer.FailedJobsError
	require.ErrorAs(t, err, &fe)
	require.Len(t, fe.Jobs, 1)
	require.Contains(t, fe.Jobs[0].Err, "maxjobduration")
	require.True(t, strings.Contains(fe.Jobs[0].Err, "longer than the maximum job duration"), fe.Jobs[0].Err)
}

// Reports that come twice, and late, change nothing: every job is taken
// once.
func TestDuplicateAndDelayedReportsAreHarmless(t *testing.T) {
	f := newFaulty(t)
	f.twice, f.delay = true, time.Millisecond
	l, _ := newLeader(t, testOpts{cfg: func(c *gaffer.Config) { c.BatchSystem = f; rescueConfig(c) }})
	got, err := gaffer.Run(t.Context(), l, Gate.New(50))
	require.NoError(t, err)
	require.Equal(t, 50*49/2, got)
	require.Equal(t, 52, l.Stats().Successes, "each job counted once")
	require.Zero(t, l.Stats().Failures)
}
