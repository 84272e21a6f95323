// Package batchsystemtest is a conformance suite for batchsystem.BatchSystem.
// Every implementation, including a user's adapter, can run it:
//
//	func TestMySystem(t *testing.T) {
//		batchsystemtest.Run(t, batchsystemtest.Config{
//			New: func(t *testing.T) batchsystem.BatchSystem { return mine.New(...) },
//		})
//	}
//
// The jobs it issues carry both a Command (a /bin/sh script) and a Run
// function doing the same thing, so the suite fits systems that start
// processes and systems that run in-process alike. Jobs named "long" run
// for an hour; the others for a second or less (a simulator can go by the
// name).
//
// Besides the contract of batchsystem.BatchSystem, the suite checks what
// adapters most often get wrong:
//
//   - a job killed while still queued must never run nor be reported;
//   - Kill and Shutdown must leave no process behind: not the worker, not
//     what it started (checked by pid, on Unix, unless
//     Config.RemoteWorkers);
//   - the optional interfaces, for a system that implements them:
//     batchsystem.Adopter, batchsystem.SchedulingStatuser, a clock
//     (gaffer.Clock: Now() time.Time) and a drainer (scaler.Drainer).
//
// A batch system must also leave no worker running beside the next
// leader's attempt of the same job when its leader dies: the
// end-to-end suite in package gaffertest checks that with a real leader
// killed mid-workflow.
package batchsystemtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/batchsystem"
)

// Config describes the system under test.
type Config struct {
	// New returns a fresh system. The suite shuts it down.
	New func(t *testing.T) batchsystem.BatchSystem
	// Timeout bounds each wait for a job to finish; 0 means 60 seconds
	// (a real scheduler may take seconds per job).
	Timeout time.Duration
	// Requirements for the suite's jobs; zero fields get small defaults.
	Requirements batchsystem.Requirements
	// Dir is a directory the jobs can write to that the system's workers
	// share; empty means a t.TempDir().
	Dir func(t *testing.T) string
	// RemoteWorkers says that jobs run on other machines, whose processes
	// the suite cannot look up by pid: the checks that Kill and Shutdown
	// leave no process behind are then skipped.
	RemoteWorkers bool
	// PilotCommand, if set, is the argv of a program that serves pilots
	// (it calls pilot.Main when its first argument is pilot.Arg): the
	// suite then also issues jobs that carry it, with a shared WorkDir,
	// and checks that grouped jobs keep their own exit codes, wall
	// times, logs and kills (the Grouped checks).
	PilotCommand []string
}

type exitErr int

func (e exitErr) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
func (e exitErr) ExitCode() int { return int(e) }

// Run runs the suite.
func Run(t *testing.T, c Config) {
	if c.Timeout == 0 {
		c.Timeout = 60 * time.Second
	}
	if c.Requirements.Cores == 0 {
		c.Requirements.Cores = 0.1
	}
	if c.Requirements.Memory == 0 {
		c.Requirements.Memory = 16 << 20
	}
	if c.Requirements.Disk == 0 {
		c.Requirements.Disk = 16 << 20
	}
	if c.Dir == nil {
		c.Dir = func(t *testing.T) string { return t.TempDir() }
	}
	// Every job's output goes to a log here: a scheduler left to choose
	// would write it to the test's working directory (sbatch's
	// slurm-<id>.out), which is the package's source folder.
	s := suite{c: c, logDir: t.TempDir()}
	t.Run("SuccessIsReportedOnce", s.success)
	t.Run("FailureCarriesExitCode", s.failure)
	t.Run("ManyJobsUniqueIDs", s.many)
	t.Run("KilledJobIsNeverReported", s.kill)
	t.Run("KilledWhileQueuedNeverRuns", s.killQueued)
	t.Run("ImpossibleRequestRefused", s.impossible)
	t.Run("WaitRespectsMaxWaitAndContext", s.wait)
	t.Run("EnvironmentAndLog", s.envAndLog)
	t.Run("ShutdownStopsEverything", s.shutdown)
	t.Run("ShutdownLeavesNoProcess", s.shutdownProcesses)
	t.Run("Optional", func(t *testing.T) {
		t.Run("Adopter", s.adopter)
		t.Run("SchedulingStatuser", s.schedulingStatus)
		t.Run("Clock", s.clock)
		t.Run("Drainer", s.drainer)
		t.Run("Releaser", s.releaser)
	})
	t.Run("Grouped", func(t *testing.T) {
		if len(c.PilotCommand) == 0 {
			t.Skip("Config.PilotCommand not set")
		}
		t.Run("OwnExitCodesAndWallTimes", s.groupedReports)
		t.Run("KillOneOfAGroup", s.groupedKill)
		t.Run("EnvironmentAndLog", s.groupedEnvLog)
		t.Run("Adopter", s.groupedAdopt)
	})
}

type suite struct {
	c      Config
	logDir string
}

func (s suite) sys(t *testing.T) batchsystem.BatchSystem {
	b := s.c.New(t)
	t.Cleanup(func() { _ = b.Shutdown(context.Background()) })
	return b
}

// spec builds a job that sleeps, then exits with code; the in-process
// Run does the same.
func (s suite) spec(name string, sleep time.Duration, code int) batchsystem.JobSpec {
	script := fmt.Sprintf("sleep %.3f; exit %d", sleep.Seconds(), code)
	return batchsystem.JobSpec{
		JobID: name, Name: name, Kind: "conformance", Attempt: 1,
		Requirements: s.c.Requirements,
		LogPath:      filepath.Join(s.logDir, name+".log"),
		Command:      []string{"/bin/sh", "-c", script},
		Run: func(ctx context.Context) error {
			select {
			case <-time.After(sleep):
			case <-ctx.Done():
				return ctx.Err()
			}
			if code != 0 {
				return exitErr(code)
			}
			return nil
		},
	}
}

// waitRunning waits until Running lists id.
func (s suite) waitRunning(t *testing.T, b batchsystem.BatchSystem, id batchsystem.ID) {
	t.Helper()
	deadline := time.Now().Add(s.c.Timeout)
	for {
		running, err := b.Running(t.Context())
		require.NoError(t, err)
		if _, ok := running[id]; ok {
			return
		}
		require.True(t, time.Now().Before(deadline), "job %d never started running", id)
		time.Sleep(50 * time.Millisecond)
	}
}

func (s suite) waitFor(t *testing.T, b batchsystem.BatchSystem, n int) map[batchsystem.ID]batchsystem.FinishedJob {
	t.Helper()
	got := map[batchsystem.ID]batchsystem.FinishedJob{}
	deadline := time.Now().Add(s.c.Timeout)
	for len(got) < n {
		require.True(t, time.Now().Before(deadline), "timed out with %d of %d jobs reported", len(got), n)
		f, err := b.WaitFinished(t.Context(), time.Second)
		require.NoError(t, err)
		if f == nil {
			continue
		}
		_, dup := got[f.ID]
		require.False(t, dup, "job %d reported twice", f.ID)
		got[f.ID] = *f
	}
	return got
}

func (s suite) requireQuiet(t *testing.T, b batchsystem.BatchSystem, wait time.Duration) {
	t.Helper()
	f, err := b.WaitFinished(t.Context(), wait)
	require.NoError(t, err)
	require.Nil(t, f, "nothing more may be reported")
}

func (s suite) success(t *testing.T) {
	b := s.sys(t)
	id, err := b.Issue(t.Context(), s.spec("ok", 200*time.Millisecond, 0))
	require.NoError(t, err)
	require.NotZero(t, id)
	issued, err := b.Issued(t.Context())
	require.NoError(t, err)
	require.Contains(t, issued, id)
	got := s.waitFor(t, b, 1)
	f := got[id]
	require.Equal(t, 0, f.ExitCode)
	require.Greater(t, f.WallTime, time.Duration(0), "wall time is measured")
	issued, err = b.Issued(t.Context())
	require.NoError(t, err)
	require.NotContains(t, issued, id, "a reported job is no longer issued")
	s.requireQuiet(t, b, 500*time.Millisecond)
}

func (s suite) failure(t *testing.T) {
	b := s.sys(t)
	id, err := b.Issue(t.Context(), s.spec("fail", 0, 3))
	require.NoError(t, err)
	f := s.waitFor(t, b, 1)[id]
	require.Equal(t, 3, f.ExitCode)
}

func (s suite) many(t *testing.T) {
	b := s.sys(t)
	const n = 20
	ids := map[batchsystem.ID]bool{}
	for i := range n {
		id, err := b.Issue(t.Context(), s.spec(fmt.Sprintf("m%d", i), 10*time.Millisecond, i%2))
		require.NoError(t, err)
		require.NotZero(t, id)
		require.False(t, ids[id], "IDs are unique")
		ids[id] = true
	}
	got := s.waitFor(t, b, n)
	for id := range ids {
		require.Contains(t, got, id)
	}
	s.requireQuiet(t, b, 300*time.Millisecond)
}

func (s suite) kill(t *testing.T) {
	b := s.sys(t)
	tr := s.tree(t, "long")
	long, err := b.Issue(t.Context(), tr.spec)
	require.NoError(t, err)
	s.waitRunning(t, b, long)
	started := tr.waitStarted(t, b, s.c.Timeout)
	require.NoError(t, b.Kill(t.Context(), []batchsystem.ID{long, 987654}), "unknown IDs are ignored")
	if started {
		tr.requireGone(t, "Kill")
	}
	running, err := b.Running(t.Context())
	require.NoError(t, err)
	require.NotContains(t, running, long)
	issued, err := b.Issued(t.Context())
	require.NoError(t, err)
	require.NotContains(t, issued, long)
	// A later job is still reported, and the killed one never is.
	after, err := b.Issue(t.Context(), s.spec("after", 0, 0))
	require.NoError(t, err)
	got := s.waitFor(t, b, 1)
	require.Contains(t, got, after)
	s.requireQuiet(t, b, 500*time.Millisecond)
}

func (s suite) impossible(t *testing.T) {
	b := s.sys(t)
	spec := s.spec("huge", 0, 0)
	spec.Requirements.Cores = 1e6
	_, err := b.Issue(t.Context(), spec)
	require.ErrorIs(t, err, batchsystem.ErrInsufficientResources)
	require.Contains(t, err.Error(), "huge", "the error names the job")
	var ire *batchsystem.InsufficientResourcesError
	if errors.As(err, &ire) {
		require.Equal(t, "cores", ire.Resource)
	}
}

func (s suite) wait(t *testing.T) {
	b := s.sys(t)
	start := time.Now()
	f, err := b.WaitFinished(t.Context(), 0)
	require.NoError(t, err)
	require.Nil(t, f)
	require.Less(t, time.Since(start), time.Second, "maxWait 0 does not block")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = b.WaitFinished(ctx, time.Hour)
	require.ErrorIs(t, err, context.Canceled)
}

func (s suite) envAndLog(t *testing.T) {
	b := s.sys(t)
	if ip, ok := b.(batchsystem.InProcess); ok && ip.InProcess() {
		t.Skip("in-process systems have no worker environment or log")
	}
	dir := s.c.Dir(t)
	log := filepath.Join(dir, "job.log")
	spec := s.spec("env", 0, 0)
	spec.Command = []string{"/bin/sh", "-c", `echo "hello $GAFFER_SUITE"; test "$GAFFER_SUITE" = yes`}
	spec.Env = map[string]string{"GAFFER_SUITE": "yes"}
	spec.LogPath = log
	spec.Dir = dir
	id, err := b.Issue(t.Context(), spec)
	require.NoError(t, err)
	require.Equal(t, 0, s.waitFor(t, b, 1)[id].ExitCode)
	out, err := os.ReadFile(log)
	require.NoError(t, err)
	require.True(t, strings.Contains(string(out), "hello yes"), "log holds the worker's output, got %q", out)
}

func (s suite) shutdown(t *testing.T) {
	b := s.c.New(t)
	_, err := b.Issue(t.Context(), s.spec("long", time.Hour, 0))
	require.NoError(t, err)
	require.NoError(t, b.Shutdown(t.Context()))
	_, err = b.Issue(t.Context(), s.spec("late", 0, 0))
	require.ErrorIs(t, err, batchsystem.ErrShutdown)
	_, err = b.WaitFinished(t.Context(), 0)
	require.ErrorIs(t, err, batchsystem.ErrShutdown)
}
