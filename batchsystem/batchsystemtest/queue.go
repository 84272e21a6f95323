package batchsystemtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/batchsystem"
)

const (
	// maxFill caps the long jobs the suite issues to fill the system
	// before one stays queued.
	maxFill = 128
	// settle is how long a job may take to start before the suite counts
	// it as queued (a scheduler polls, so starts take a moment).
	settle = 3 * time.Second
)

// fill issues long jobs, in batches that double, until one of them does
// not start: the system is full and jobs issued now queue. It returns the
// IDs issued; ok is false if every job started.
func (s suite) fill(t *testing.T, b batchsystem.BatchSystem) (ids []batchsystem.ID, ok bool) {
	t.Helper()
	for batch := 4; len(ids) < maxFill; batch *= 2 {
		var these []batchsystem.ID
		for i := 0; i < batch && len(ids) < maxFill; i++ {
			id, err := b.Issue(t.Context(), s.spec("long", time.Hour, 0))
			require.NoError(t, err)
			these = append(these, id)
			ids = append(ids, id)
		}
		deadline := time.Now().Add(settle)
		for {
			running, err := b.Running(t.Context())
			require.NoError(t, err)
			n := 0
			for _, id := range these {
				if _, ok := running[id]; ok {
					n++
				}
			}
			if n < len(these) && time.Now().After(deadline) {
				return ids, true
			}
			if n == len(these) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return ids, false
}

// killQueued: a job killed while it waits in the system's queue is gone
// for good. It does not start when room frees up, and is never reported.
// (An adapter that kills only the processes it has started, and forgets
// its own queue, fails here.)
func (s suite) killQueued(t *testing.T) {
	b := s.sys(t)
	blockers, ok := s.fill(t, b)
	if !ok {
		t.Skipf("all %d long jobs the suite issued ran at once: this system queues nothing", len(blockers))
	}
	t.Logf("%d long jobs fill the system", len(blockers))

	// A short job behind them, which leaves a mark if it ever starts.
	dir := s.c.Dir(t)
	marker := filepath.Join(dir, "queued-job-ran")
	spec := s.spec("queued", 0, 0)
	spec.Command = []string{"/bin/sh", "-c", "touch " + shellQuote(marker)}
	spec.Run = func(context.Context) error { return os.WriteFile(marker, nil, 0o644) }
	queued, err := b.Issue(t.Context(), spec)
	require.NoError(t, err)
	running, err := b.Running(t.Context())
	require.NoError(t, err)
	if _, ok := running[queued]; ok {
		t.Log("the short job started before it could be killed while queued; checking it as a killed job")
	}
	if st, ok := b.(batchsystem.SchedulingStatuser); ok {
		t.Logf("the queued job waits because: %q", st.SchedulingStatus(queued))
	}
	require.NoError(t, b.Kill(t.Context(), []batchsystem.ID{queued}))
	issued, err := b.Issued(t.Context())
	require.NoError(t, err)
	require.NotContains(t, issued, queued, "a killed queued job is no longer issued")

	// Make room: kill the long jobs. A queued job the system forgot to
	// drop would start now.
	require.NoError(t, b.Kill(t.Context(), blockers))
	after, err := b.Issue(t.Context(), s.spec("after", 0, 0))
	require.NoError(t, err)
	for {
		got := s.waitFor(t, b, 1)
		require.NotContains(t, got, queued, "the job killed while queued was reported")
		if _, ok := got[after]; ok {
			break
		}
	}
	s.requireQuiet(t, b, time.Second)
	_, err = os.Stat(marker)
	require.ErrorIs(t, err, os.ErrNotExist, "the job killed while queued ran anyway")
	issued, err = b.Issued(t.Context())
	require.NoError(t, err)
	require.Empty(t, issued, fmt.Sprintf("nothing is left issued after the kills, got %v", issued))
}
