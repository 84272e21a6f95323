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
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem/gridengine"
)

const (
	envStore  = "GAFFER_LT_STORE"  // makes the test binary a leader on this store
	envPrefix = "GAFFER_LT_PREFIX" // the leader's job-name prefix
	envCrash  = "GAFFER_LT_CRASH"  // "1": the workflow has a leaf that crashes
)

// adoptSteps are the leaves of the re-adoption workflow. The leader is
// killed once the two short ones ended; the middle one ends while no
// leader runs; the two long ones are still running when the second leader
// starts. With crash, one more leaf crashes (exit 3, no result) while no
// leader runs: the second leader must adopt it, find its exit status in
// accounting and retry it.
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
	bs, err := gridengine.New(gridengine.Options{PollInterval: pollInterval, NamePrefix: prefix, Logger: log})
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

// A leader SIGKILLed while its Grid Engine jobs run leaves them running; a
// new leader on the same store adopts them instead of submitting them
// again, takes the results of jobs that finished while no leader ran, and
// finishes with the right sum. No job that had finished before the kill
// runs again.
func TestReadoptionAfterLeaderCrash(t *testing.T) {
	needCluster(t)
	testReadoption(t, false)
}

// The same, with a leaf that crashes (exit 3, no result) while no leader
// runs: the second leader adopts it, reads its end from qacct and retries
// it.
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

	// Every leaf started: the leader has recorded every job number, which
	// it does once it has issued the batch (a qsub takes 30 to 100 ms, a
	// job a second to start). The short leaves ended.
	waitFor(t, 90*time.Second, "every leaf to start and the two short ones to end", func() bool {
		m := readMarks(t, marks)
		return countMarks(m, "start") == len(steps) && countMarks(m, "end") >= 2
	})
	// Give the leader a poll or two: whether or not it has recorded the
	// short leaves' ends, they must not run again.
	time.Sleep(pollInterval)
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	killed = true
	killedAt := time.Now()
	endedBeforeKill := map[uint64]bool{}
	for _, m := range readMarks(t, marks) {
		if m.what == "end" {
			endedBeforeKill[m.job] = true
		}
	}
	require.Len(t, endedBeforeKill, 2, "only the short leaves ended before the kill")
	running := unfinished(t, prefix, marks)
	require.Len(t, running, len(steps)-2, "the killed leader's jobs still run: %v", running)

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
	t.Logf("second leader starts %v after the kill; running in Grid Engine: %v", time.Since(killedAt).Round(time.Millisecond), stillRunning)

	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	start := time.Now()
	sum, st, err := adoptLeader(t.Context(), store, prefix, marks, "2", crash, log)
	require.NoError(t, err)
	t.Logf("second leader: %v, %+v", time.Since(start).Round(time.Millisecond), st)
	require.Equal(t, sumOf(steps), sum)
	require.Equal(t, 1+crashes, st.Attempts, "the second leader submits only the sum (and the crashed leaf's retry)")

	// Every leaf started once per attempt, and the adopted ones under the
	// first leader's Grid Engine job only.
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
		var numbers []string
		for _, s := range ss {
			numbers = append(numbers, s.number)
		}
		slices.Sort(numbers)
		if len(ss) == 2 {
			crashed++
			require.Equal(t, "1", ss[0].phase, "job %d: first attempt under the first leader", job)
			require.Equal(t, 1, ss[0].attempt)
			require.Equal(t, "2", ss[1].phase, "job %d: its retry under the second", job)
			require.Equal(t, 2, ss[1].attempt)
			require.Len(t, slices.Compact(numbers), 2, "job %d: one Grid Engine job per attempt", job)
			continue
		}
		require.Len(t, ss, 1, "job %d started once: %+v", job, ss)
		require.Equal(t, "1", ss[0].phase, "job %d was submitted by the first leader only", job)
	}
	require.Equal(t, crashes, crashed, "only the crashing leaf ran twice")
	require.Empty(t, jobsOf(t, prefix, false), "no Grid Engine job is left")
}

// unfinished lists the jobs of prefix that qstat shows running and whose
// gaffer job has not marked its end. A job that just marked its end may
// still show as running for a moment while its worker writes the result
// and exits.
func unfinished(t *testing.T, prefix, marks string) []geJob {
	t.Helper()
	ended := map[string]bool{}
	for _, m := range readMarks(t, marks) {
		if m.what == "end" || m.what == "crash" {
			ended[fmt.Sprintf("_j%d", m.job)] = true
		}
	}
	var res []geJob
	for _, j := range jobsOf(t, prefix, true) {
		if !ended[j.Name[strings.LastIndex(j.Name, "_"):]] {
			res = append(res, j)
		}
	}
	return res
}
