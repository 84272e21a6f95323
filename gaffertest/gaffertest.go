// Package gaffertest runs real workflows end to end through a batch
// system adapter or a job store, as go-workflows' backend tests do: a
// fan-out with a join, a failure and a retry, a cancelled workflow, and a
// leader killed mid-workflow and started again on the same store. Where
// batchsystemtest and jobstoretest check each method of the contract,
// these suites check what a user sees: the right result, each job run
// once, nothing left running, and no job run twice at once after a
// leader dies.
//
//	func TestMain(m *testing.M) {
//		gaffer.ServeWorker() // the suite's workers are this test binary
//		os.Exit(m.Run())
//	}
//
//	func TestEndToEnd(t *testing.T) {
//		gaffertest.RunBatchSystem(t, gaffertest.BatchSystemConfig{
//			New: func(t *testing.T) batchsystem.BatchSystem { return mine.New(...) },
//		})
//	}
//
// The test binary must call gaffer.ServeWorker first thing in TestMain
// when the batch system starts workers as processes: they are the test
// binary, started again. The leader-restart check also starts the test
// binary again, as the leader that it kills; that child runs only the
// subtest that started it, with the parent's environment, and calls New
// there. New must make the same system in both processes: an Adopter
// that names its jobs (a Slurm name prefix) must name them alike, for
// instance from an environment variable the parent sets with t.Setenv.
package gaffertest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/jobstore"
)

// BatchSystemConfig describes the batch system under test.
type BatchSystemConfig struct {
	// New returns a fresh batch system for one leader. The suite shuts it
	// down. It is also called in the child process that plays the leader
	// which the leader-restart check kills.
	New func(t *testing.T) batchsystem.BatchSystem
	// Dir returns a directory that the leader and the workers share (the
	// store and the work directory go there); empty means t.TempDir().
	Dir func(t *testing.T) string
	// Timeout bounds each workflow; 0 means 5 minutes.
	Timeout time.Duration
	// RemoteWorkers says that workers run on other machines, whose
	// processes the suite cannot look up by pid.
	RemoteWorkers bool
}

// Opener opens (creating if needed) the job store kept under dir, as
// jobstoretest.Opener does.
type Opener func(t *testing.T, dir string) (jobstore.Store, error)

// env is what a workflow check needs: where to run, and how to make the
// leader's batch system and store.
type env struct {
	newBS   func(t *testing.T) batchsystem.BatchSystem
	open    Opener // nil: the leader opens a bbolt file itself
	dir     func(t *testing.T) string
	timeout time.Duration
	remote  bool
}

// RunBatchSystem runs the end-to-end workflows through the batch system,
// with gaffer's bbolt store.
func RunBatchSystem(t *testing.T, c BatchSystemConfig) {
	e := env{newBS: c.New, dir: c.Dir, timeout: c.Timeout, remote: c.RemoteWorkers}
	e.run(t)
}

// RunJobStore runs the end-to-end workflows on the job store, with jobs
// run in-process by the local batch system.
func RunJobStore(t *testing.T, open Opener) {
	e := env{newBS: newInProcess, open: open}
	e.run(t)
}

func (e env) run(t *testing.T) {
	if e.dir == nil {
		e.dir = func(t *testing.T) string { return t.TempDir() }
	}
	if e.timeout == 0 {
		e.timeout = 5 * time.Minute
	}
	if os.Getenv(envChild) != "" {
		// The child leader of LeaderRestart: run that, nothing else.
		t.Run("LeaderRestart", e.restart)
		return
	}
	t.Run("FanOutAndJoin", e.fanOut)
	t.Run("FailureAndRetry", e.failure)
	t.Run("Cancel", e.cancel)
	t.Run("LeaderRestart", e.restart)
}

// workflow is one run's leader, its batch system and its files.
type workflow struct {
	bs    batchsystem.BatchSystem
	l     *gaffer.Leader
	store jobstore.Store // when the suite opened it
	work  string         // the work directory
	marks string         // the marks file of the run
}

// leader makes a leader on the store under dir, and sets the environment
// the jobs mark in; phase names the leader in the marks.
func (e env) leader(t *testing.T, dir, phase string) *workflow {
	t.Helper()
	w := &workflow{work: filepath.Join(dir, "work"), marks: filepath.Join(dir, "marks")}
	t.Setenv(envMarks, w.marks)
	t.Setenv(envPhase, phase)
	w.bs = e.newBS(t)
	t.Cleanup(func() { _ = w.bs.Shutdown(contextBackground()) })
	cfg := gaffer.Config{
		BatchSystem:  w.bs,
		WorkDir:      w.work,
		RetryCount:   1,
		RetryBackoff: -1,
		// The workers' environment, for systems that do not pass on the
		// leader's.
		WorkerEnv:           map[string]string{envMarks: w.marks, envPhase: phase},
		DefaultRequirements: gaffer.Requirements{Cores: 0.1, Memory: 16 << 20, Disk: 1 << 20},
	}
	if e.open != nil {
		s, err := e.openStore(t, dir)
		if err != nil {
			t.Fatalf("opening the store: %v", err)
		}
		w.store = s
		cfg.JobStore = s
	} else {
		cfg.Store = filepath.Join(dir, "wf.db")
	}
	l, err := gaffer.NewLeader(cfg)
	if err != nil {
		t.Fatalf("NewLeader: %v", err)
	}
	w.l = l
	t.Cleanup(func() { w.close() })
	return w
}

// close closes the leader and the store the suite opened; it may be
// called more than once.
func (w *workflow) close() {
	if w.l != nil {
		_ = w.l.Close()
		w.l = nil
	}
	if w.store != nil {
		_ = w.store.Close()
		w.store = nil
	}
}

// openStore opens the suite's store under dir with the user's Opener,
// which, as jobstoretest's, is given a directory that exists.
func (e env) openStore(t *testing.T, dir string) (jobstore.Store, error) {
	sd := filepath.Join(dir, "store")
	if err := os.MkdirAll(sd, 0o755); err != nil {
		return nil, err
	}
	return e.open(t, sd)
}
