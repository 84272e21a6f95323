package leadertest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem/slurm"
)

const (
	envStore  = "GAFFER_LT_STORE"  // makes the test binary a leader on this store
	envPrefix = "GAFFER_LT_PREFIX" // the leader's Slurm job-name prefix
	envCrash  = "GAFFER_LT_CRASH"  // "1": the workflow has a leaf that crashes
)

// adoptSteps are the leaves of the re-adoption workflow. The leader is
// killed once the two short ones ended; the middle ones end while no
// leader runs; the two long ones are still running when the second leader
// starts. With crash, one middle leaf crashes (exit 3, no result) instead
// of ending: the second leader must adopt it, see it FAILED and retry it.
func adoptSteps(crash bool) []Step {
	steps := []Step{
		{Sleep: 300 * time.Millisecond, Value: 1},
		{Sleep: 300 * time.Millisecond, Value: 2},
		{Sleep: 6 * time.Second, Value: 4},
		{Sleep: 20 * time.Second, Value: 16},
		{Sleep: 20 * time.Second, Value: 32},
	}
	if crash {
		steps = append(steps, Step{Sleep: 6 * time.Second, Value: 8, Crash: true})
	}
	return steps
}

// adoptLeader runs the re-adoption workflow on store; phase goes to the
// jobs it submits.
func adoptLeader(ctx context.Context, store, prefix, marks, phase string, crash bool, log *slog.Logger) (int, gaffer.Stats, error) {
	bs, err := slurm.New(slurm.Options{PollInterval: pollInterval, NamePrefix: prefix, Logger: log})
	if err != nil {
		return 0, gaffer.Stats{}, err
	}
	defer bs.Shutdown(context.Background())
	l, err := gaffer.NewLeader(gaffer.Config{
		Store: store, BatchSystem: bs, Logger: log,
		RetryCount: 1, RetryBackoff: -1,
		WorkerEnv: map[string]string{envMarks: marks, envPhase: phase},
	})
	if err != nil {
		return 0, gaffer.Stats{}, err
	}
	defer l.Close()
	sum, err := gaffer.Run(ctx, l, Steps.New(adoptSteps(crash)))
	return sum, l.Stats(), err
}

// childLeaderMain is the first leader, in a child process the test kills.
func childLeaderMain(store string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sum, _, err := adoptLeader(context.Background(), store, os.Getenv(envPrefix), os.Getenv(envMarks), "1", os.Getenv(envCrash) == "1", log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("sum", sum)
	return 0
}

// A leader SIGKILLed while its Slurm jobs run leaves them running; a new
// leader on the same store adopts them instead of submitting them again,
// takes the results of jobs that finished while no leader ran, and
// finishes with the right sum. No job that had finished before the kill
// runs again.
func TestReadoptionAfterLeaderCrash(t *testing.T) {
	needCluster(t)
	testReadoption(t, false)
}

// The same, with a leaf that crashes (Slurm: FAILED, no result) while no
// leader runs: the second leader adopts it, sees it failed and retries it.
func TestReadoptedJobFailsAndIsRetried(t *testing.T) {
	needCluster(t)
	testReadoption(t, true)
}

func testReadoption(t *testing.T, crash bool) {
	steps := adoptSteps(crash)
	dir := t.TempDir()
	store, marks := filepath.Join(dir, "wf.db"), filepath.Join(dir, "marks")
	prefix := uniquePrefix("adopt")

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envStore+"="+store, envPrefix+"="+prefix, envMarks+"="+marks)
	if crash {
		cmd.Env = append(cmd.Env, envCrash+"=1")
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("first leader's output:\n%s", out.String())
		}
	}()

	waitFor(t, 90*time.Second, "the two short leaves to end", func() bool {
		return countMarks(readMarks(t, marks), "end") >= 2
	})
	// Give the leader a poll or two: whether or not it has recorded the
	// short leaves, they must not run again.
	time.Sleep(pollInterval)
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	killed = true
	killedAt := time.Now()
	before := readMarks(t, marks)
	endedBeforeKill := map[uint64]bool{}
	for _, m := range before {
		if m.what == "end" {
			endedBeforeKill[m.job] = true
		}
	}
	require.Len(t, endedBeforeKill, 2, "only the short leaves ended before the kill")
	running := unfinished(t, prefix, marks)
	require.Len(t, running, len(steps)-2, "the killed leader's Slurm jobs still run: %v", running)

	// Wait out the middle leaves: one ends with a result, one crashes.
	crashes := 0
	if crash {
		crashes = 1
	}
	waitFor(t, 60*time.Second, "the middle leaves to end with no leader", func() bool {
		m := readMarks(t, marks)
		return countMarks(m, "end") >= 3 && countMarks(m, "crash") >= crashes
	})
	stillRunning := unfinished(t, prefix, marks)
	require.Len(t, stillRunning, 2, "the long leaves are still running when the second leader starts")
	t.Logf("second leader starts %v after the kill; running in Slurm: %v", time.Since(killedAt).Round(time.Millisecond), stillRunning)

	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	start := time.Now()
	sum, st, err := adoptLeader(t.Context(), store, prefix, marks, "2", crash, log)
	require.NoError(t, err)
	t.Logf("second leader: %v, %+v", time.Since(start).Round(time.Millisecond), st)
	require.Equal(t, sumOf(steps), sum)
	require.Equal(t, 1+crashes, st.Attempts, "the second leader submits only the sum (and the crashed leaf's retry)")

	// Every leaf started once per attempt, and the long ones (adopted)
	// under the first leader's Slurm job only.
	starts := map[uint64][]markLine{}
	for _, m := range readMarks(t, marks) {
		if m.what == "start" {
			starts[m.job] = append(starts[m.job], m)
		}
		if m.phase == "2" {
			require.False(t, endedBeforeKill[m.job], "job %d had ended before the kill but ran again: %+v", m.job, m)
		}
	}
	require.Len(t, starts, len(steps), "every leaf started")
	crashed := 0
	for job, ss := range starts {
		var slurmIDs []string
		for _, s := range ss {
			slurmIDs = append(slurmIDs, s.slurmID)
		}
		slices.Sort(slurmIDs)
		if len(ss) == 2 {
			crashed++
			require.Equal(t, "1", ss[0].phase, "job %d: first attempt under the first leader", job)
			require.Equal(t, 1, ss[0].attempt)
			require.Equal(t, "2", ss[1].phase, "job %d: its retry under the second", job)
			require.Equal(t, 2, ss[1].attempt)
			require.Len(t, slices.Compact(slurmIDs), 2, "job %d: each attempt ran in its own leader's Slurm job (pilot)", job)
			continue
		}
		require.Len(t, ss, 1, "job %d started once: %+v", job, ss)
		require.Equal(t, "1", ss[0].phase, "job %d was submitted by the first leader only", job)
	}
	require.Equal(t, crashes, crashed, "only the crashing leaf ran twice")
	// The leader was SIGKILLed while groups ran: the first leader's
	// leaves shared pilots, fewer Slurm jobs than leaves.
	firstSlurm := map[string]int{}
	for _, ss := range starts {
		if ss[0].phase == "1" {
			firstSlurm[ss[0].slurmID]++
		}
	}
	require.Less(t, len(firstSlurm), len(steps), "the first leader's leaves ran grouped: %v", firstSlurm)
	require.Empty(t, jobsOf(t, prefix, ""), "no Slurm job is left")
}

// unfinished lists the gaffer jobs that have marked their start but not
// their end, and whose Slurm job (a pilot, with grouping) squeue shows
// RUNNING under prefix. A job that just marked its end may still run for
// a moment while its worker writes the result and exits.
func unfinished(t *testing.T, prefix, marks string) []markLine {
	t.Helper()
	running := map[string]bool{}
	for _, j := range jobsOf(t, prefix, "RUNNING") {
		running[j.id] = true
	}
	ended := map[uint64]bool{}
	ms := readMarks(t, marks)
	for _, m := range ms {
		if m.what == "end" || m.what == "crash" {
			ended[m.job] = true
		}
	}
	latest := map[uint64]markLine{}
	for _, m := range ms {
		if m.what == "start" && !ended[m.job] {
			latest[m.job] = m
		}
	}
	var res []markLine
	for _, m := range latest {
		if running[m.slurmID] {
			res = append(res, m)
		}
	}
	return res
}
