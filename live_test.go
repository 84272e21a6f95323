package gaffer_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/jobstore"
)

// liveJob finds job id in a snapshot's list.
func liveJob(jobs []gaffer.LiveJob, id gaffer.JobID) (gaffer.LiveJob, bool) {
	for _, j := range jobs {
		if j.ID == id {
			return j, true
		}
	}
	return gaffer.LiveJob{}, false
}

// A running leader publishes its state in the work directory: counters,
// why jobs wait, answers to why requests, and, when the run ends, a final
// snapshot with the outcome and the stats of the attempts.
func TestLiveSnapshot(t *testing.T) {
	release := make(chan struct{})
	holdRelease.Store(&release)
	l, store := newLeader(t, testOpts{})
	workDir := store + ".work"
	done := make(chan error, 1)
	go func() { _, err := l.Run(t.Context(), HoldRoot.New(struct{}{})); done <- err }()

	// j1 the root, j2 hold (running), j3 after (waiting for hold).
	var s *gaffer.LiveStatus
	require.Eventually(t, func() bool {
		var err error
		s, err = gaffer.ReadLiveStatus(workDir)
		return err == nil && s.Counts.Issued == 1 && s.Counts.Live == 3
	}, 20*time.Second, 20*time.Millisecond)
	require.Equal(t, "running", s.Status)
	require.False(t, s.Final)
	require.Equal(t, os.Getpid(), s.PID)
	require.Equal(t, store, s.Store)
	require.Equal(t, gaffer.JobID(4), s.NextID)
	require.Equal(t, map[string]int{"why.root": 1, "why.hold": 1, "test.add": 1}, s.Kinds)
	after, ok := liveJob(s.Waiting, 3)
	require.True(t, ok, "the waiting job is explained: %+v", s.Waiting)
	require.Contains(t, after.Why, "waiting for 1 of 1 predecessor(s)")
	require.Equal(t, "after (j3)", after.Display())
	_, ok = liveJob(s.Waiting, 2)
	require.False(t, ok, "a running job is not waiting")

	withdraw, err := gaffer.RequestWhy(workDir, 1, 2, 99)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		s, err = gaffer.ReadLiveStatus(workDir)
		return err == nil && len(s.Asked) == 3
	}, 20*time.Second, 20*time.Millisecond)
	require.Equal(t, "body done; waiting for 1 child subtree(s)", s.Asked[0].Why)
	require.Contains(t, s.Asked[1].Why, "issued to the batch system")
	require.Contains(t, s.Asked[2].Why, "no such job: the workflow's jobs are j1 to j3")
	withdraw()
	_, err = gaffer.RequestWhy(filepath.Join(t.TempDir(), "nowhere"), 1)
	require.ErrorIs(t, err, gaffer.ErrNotWorkDir)

	close(release)
	require.NoError(t, <-done)
	s, err = gaffer.ReadLiveStatus(workDir)
	require.NoError(t, err)
	require.True(t, s.Final, "the run's end is published before Run returns")
	require.Equal(t, "succeeded", s.Status)
	byKind := map[string]gaffer.KindStats{}
	for _, k := range s.Stats {
		byKind[k.Kind] = k
	}
	require.Equal(t, 1, byKind["why.hold"].Jobs)
	require.Equal(t, 2, byKind["test.add"].Jobs, "child and after")
	require.Equal(t, 2, byKind["test.add"].Succeeded)
	require.Positive(t, byKind["why.hold"].Wall.N)
	w := byKind["why.hold"].Wall
	require.True(t, w.Min <= w.Median && w.Median <= w.Max)
	require.NoError(t, l.Close())

	// The same stats, read from the store with no leader.
	db, err := jobstore.OpenBolt(store, &jobstore.BoltOptions{ReadOnly: true})
	require.NoError(t, err)
	defer db.Close()
	stored, err := gaffer.StoredStats(t.Context(), db)
	require.NoError(t, err)
	require.Len(t, stored, len(s.Stats))
	for i, k := range stored {
		require.Equal(t, s.Stats[i].Kind, k.Kind)
		require.Equal(t, s.Stats[i].Jobs, k.Jobs)
		require.Equal(t, s.Stats[i].Attempts, k.Attempts)
		require.Equal(t, s.Stats[i].Wall.Max, k.Wall.Max)
	}
}

// With no leader, WhyStored explains a stored workflow's jobs as a
// leader resuming it would.
func TestWhyStored(t *testing.T) {
	resetTrace("failtree")
	l, store := newLeader(t, testOpts{})
	_, err := gaffer.Run(t.Context(), l, FailTree.New(struct{}{}))
	require.ErrorIs(t, err, gaffer.ErrJobsFailed)
	require.NoError(t, l.Close())

	db, err := jobstore.OpenBolt(store, &jobstore.BoltOptions{ReadOnly: true})
	require.NoError(t, err)
	defer db.Close()
	jobs, total, err := gaffer.WhyStored(t.Context(), db, nil, 0)
	require.NoError(t, err)
	require.Equal(t, len(jobs), total)
	var failed, skipped int
	for _, j := range jobs {
		switch {
		case strings.HasPrefix(j.Why, "failed: broken:"):
			failed++
		case strings.HasPrefix(j.Why, "will not run: predecessor"):
			skipped++
		}
	}
	require.Equal(t, 2, failed, "%+v", jobs)
	require.Positive(t, skipped, "%+v", jobs)

	jobs, _, err = gaffer.WhyStored(t.Context(), db, []gaffer.JobID{2, 1000}, 0)
	require.NoError(t, err)
	require.Equal(t, "bad1 (j2)", jobs[0].Display())
	require.Contains(t, jobs[0].Why, "broken: one")
	require.Contains(t, jobs[1].Why, "no such job")
}
