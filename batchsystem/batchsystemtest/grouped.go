package batchsystemtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/batchsystem"
)

// releaser: Release with nothing issued is not an error, and the system
// still runs jobs after it.
func (s suite) releaser(t *testing.T) {
	b := s.sys(t)
	r, ok := b.(batchsystem.Releaser)
	if !ok {
		t.Skip("not a Releaser")
	}
	require.NoError(t, r.Release(t.Context()))
	id, err := b.Issue(t.Context(), s.groupedSpec(t, "after-release", 0, 0))
	require.NoError(t, err)
	require.Contains(t, s.waitFor(t, b, 1), id)
	require.NoError(t, r.Release(t.Context()))
}

// groupedSpec is spec with what a leader gives a job that may be grouped:
// a pilot command and the workflow's work directory.
func (s suite) groupedSpec(t *testing.T, name string, sleep time.Duration, code int) batchsystem.JobSpec {
	spec := s.spec(name, sleep, code)
	if len(s.c.PilotCommand) > 0 {
		spec.PilotCommand = s.c.PilotCommand
		spec.WorkDir = s.workDir(t)
	}
	return spec
}

// workDir is one shared work directory per test.
func (s suite) workDir(t *testing.T) string {
	dir := filepath.Join(s.logDir, "work-"+strings.NewReplacer("/", "-").Replace(t.Name()))
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

// groupedReports: jobs of one shape, which a grouping system runs in one
// pilot, are each reported once, with their own exit code, and a wall
// time of their own (the one that slept a second took at least that).
func (s suite) groupedReports(t *testing.T) {
	b := s.sys(t)
	sleeps := []time.Duration{0, 1500 * time.Millisecond, 0, 200 * time.Millisecond}
	want := map[batchsystem.ID]int{}
	slept := map[batchsystem.ID]time.Duration{}
	for i, d := range sleeps {
		id, err := b.Issue(t.Context(), s.groupedSpec(t, "g"+string(rune('a'+i)), d, i))
		require.NoError(t, err)
		want[id], slept[id] = i, d
	}
	got := s.waitFor(t, b, len(sleeps))
	for id, code := range want {
		require.Equal(t, code, got[id].ExitCode, "job %d's own exit code", id)
		require.Greater(t, got[id].WallTime, time.Duration(0), "job %d's wall time is measured", id)
		require.GreaterOrEqual(t, got[id].WallTime, slept[id], "job %d's own wall time, not its group's", id)
	}
	require.Less(t, got[idWith(slept, 0)].WallTime, 1500*time.Millisecond, "a quick job does not report its group's time")
	s.requireQuiet(t, b, 500*time.Millisecond)
}

func idWith(m map[batchsystem.ID]time.Duration, d time.Duration) batchsystem.ID {
	for id, v := range m {
		if v == d {
			return id
		}
	}
	return 0
}

// groupedKill: killing one running job of a group stops that job only;
// the other goes on running and is reported, the killed one never.
func (s suite) groupedKill(t *testing.T) {
	b := s.sys(t)
	victim, err := b.Issue(t.Context(), s.groupedSpec(t, "long", time.Hour, 0))
	require.NoError(t, err)
	other, err := b.Issue(t.Context(), s.groupedSpec(t, "other", 4*time.Second, 6))
	require.NoError(t, err)
	s.waitRunning(t, b, victim)
	s.waitRunning(t, b, other)
	require.NoError(t, b.Kill(t.Context(), []batchsystem.ID{victim}))
	running, err := b.Running(t.Context())
	require.NoError(t, err)
	require.NotContains(t, running, victim)
	got := s.waitFor(t, b, 1)
	require.Contains(t, got, other, "the rest of the group runs on")
	require.Equal(t, 6, got[other].ExitCode)
	s.requireQuiet(t, b, 500*time.Millisecond)
}

// groupedEnvLog: a grouped job gets its own environment and log.
func (s suite) groupedEnvLog(t *testing.T) {
	b := s.sys(t)
	var ids []batchsystem.ID
	var logs []string
	for _, v := range []string{"one", "two"} {
		spec := s.groupedSpec(t, "env-"+v, 0, 0)
		spec.Command = []string{"/bin/sh", "-c", `echo "hello $GAFFER_SUITE"; test "$GAFFER_SUITE" = ` + v}
		spec.Env = map[string]string{"GAFFER_SUITE": v}
		spec.LogPath = filepath.Join(s.c.Dir(t), "job-"+v+".log")
		id, err := b.Issue(t.Context(), spec)
		require.NoError(t, err)
		ids, logs = append(ids, id), append(logs, spec.LogPath)
	}
	got := s.waitFor(t, b, 2)
	for i, v := range []string{"one", "two"} {
		require.Equal(t, 0, got[ids[i]].ExitCode, "job %s saw its own environment", v)
		out, err := os.ReadFile(logs[i])
		require.NoError(t, err)
		require.Contains(t, string(out), "hello "+v)
		require.NotContains(t, string(out), "hello "+map[string]string{"one": "two", "two": "one"}[v], "no other job's output")
	}
}

// groupedAdopt: a second system adopts a grouped job that runs, by its
// backing ID, and reports the job's own exit code.
func (s suite) groupedAdopt(t *testing.T) {
	b := s.sys(t)
	a, ok := b.(batchsystem.Adopter)
	if !ok {
		t.Skip("not an Adopter")
	}
	spec := s.groupedSpec(t, "adoptee", 3*time.Second, 5)
	id, err := b.Issue(t.Context(), spec)
	require.NoError(t, err)
	s.waitRunning(t, b, id)
	backing, ok := a.BackingID(id)
	require.True(t, ok)

	next := s.sys(t)
	id2, err := next.(batchsystem.Adopter).Adopt(t.Context(), spec, backing)
	require.NoError(t, err)
	f := s.waitFor(t, next, 1)[id2]
	require.Equal(t, 5, f.ExitCode, "the adopted job's own exit code")
}
