package batchsystemtest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/batchsystem"
)

// clock is gaffer.Clock, restated so that this package does not import
// the root package: a batch system that keeps its own time.
type clock interface{ Now() time.Time }

// drainer is scaler.Drainer, restated likewise: a batch system that can
// keep new jobs off nodes.
type drainer interface {
	Drain(ctx context.Context, ids []string) error
	Undrain(ctx context.Context, ids []string) error
}

// adopter: a second system (the next leader's) adopts a job the first
// issued, by its backing ID, and reports it as if it had issued it.
func (s suite) adopter(t *testing.T) {
	b := s.sys(t)
	a, ok := b.(batchsystem.Adopter)
	if !ok {
		t.Skip("not an Adopter")
	}
	spec := s.spec("adoptee", 3*time.Second, 5)
	id, err := b.Issue(t.Context(), spec)
	require.NoError(t, err)
	backing, ok := a.BackingID(id)
	require.True(t, ok, "an issued job has a backing ID")
	require.NotEmpty(t, backing)
	_, ok = a.BackingID(id + 1_000_000)
	require.False(t, ok, "an unknown job has no backing ID")

	next := s.sys(t)
	a2, ok := next.(batchsystem.Adopter)
	require.True(t, ok)
	id2, err := a2.Adopt(t.Context(), spec, backing)
	require.NoError(t, err)
	require.NotZero(t, id2)
	again, ok := a2.BackingID(id2)
	require.True(t, ok)
	require.Equal(t, backing, again, "an adopted job keeps its backing ID")
	issued, err := next.Issued(t.Context())
	require.NoError(t, err)
	require.Contains(t, issued, id2, "an adopted job is issued")
	f := s.waitFor(t, next, 1)[id2]
	require.Equal(t, 5, f.ExitCode, "the adopted job's own exit code is reported")
	s.requireQuiet(t, next, 500*time.Millisecond)
}

// schedulingStatus: SchedulingStatus answers for any ID without
// blocking, and has nothing to say of a running or unknown job. (What it
// says of queued jobs is logged by KilledWhileQueuedNeverRuns.)
func (s suite) schedulingStatus(t *testing.T) {
	b := s.sys(t)
	st, ok := b.(batchsystem.SchedulingStatuser)
	if !ok {
		t.Skip("not a SchedulingStatuser")
	}
	require.Empty(t, st.SchedulingStatus(987654), "an unknown job")
	id, err := b.Issue(t.Context(), s.spec("long", time.Hour, 0))
	require.NoError(t, err)
	s.waitRunning(t, b, id)
	require.Empty(t, st.SchedulingStatus(id), "a running job is not waiting")
	require.NoError(t, b.Kill(t.Context(), []batchsystem.ID{id}))
	require.Empty(t, st.SchedulingStatus(id), "a killed job is not waiting")
}

// clock: a system with its own clock measures wall times and running
// times on it, and the clock never goes back.
func (s suite) clock(t *testing.T) {
	b := s.sys(t)
	c, ok := b.(clock)
	if !ok {
		t.Skip("keeps no clock of its own (Now() time.Time)")
	}
	t0 := c.Now()
	long, err := b.Issue(t.Context(), s.spec("long", time.Hour, 0))
	require.NoError(t, err)
	short, err := b.Issue(t.Context(), s.spec("short", 200*time.Millisecond, 0))
	require.NoError(t, err)
	var f batchsystem.FinishedJob
	last := t0
	deadline := time.Now().Add(s.c.Timeout)
	for f.ID != short {
		require.True(t, time.Now().Before(deadline), "the short job was never reported")
		got, err := b.WaitFinished(t.Context(), time.Second)
		require.NoError(t, err)
		now := c.Now()
		require.False(t, now.Before(last), "the clock went back from %v to %v", last, now)
		last = now
		if got != nil {
			f = *got
		}
	}
	elapsed := c.Now().Sub(t0)
	require.LessOrEqual(t, f.WallTime, elapsed, "a wall time longer than the system's clock has run: not measured on it")
	running, err := b.Running(t.Context())
	require.NoError(t, err)
	require.Contains(t, running, long)
	require.LessOrEqual(t, running[long], c.Now().Sub(t0), "a running time longer than the system's clock has run")
}

// drainer: draining and undraining nodes the system does not know is not
// an error (a node can vanish on its own), and jobs still run after.
func (s suite) drainer(t *testing.T) {
	b := s.sys(t)
	d, ok := b.(drainer)
	if !ok {
		t.Skip("not a drainer (Drain, Undrain)")
	}
	require.NoError(t, d.Drain(t.Context(), []string{"no-such-node"}))
	require.NoError(t, d.Undrain(t.Context(), []string{"no-such-node"}))
	id, err := b.Issue(t.Context(), s.spec("ok", 0, 0))
	require.NoError(t, err)
	require.Contains(t, s.waitFor(t, b, 1), id)
}
