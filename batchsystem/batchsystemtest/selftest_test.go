//go:build unix

package batchsystemtest_test

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/batchsystem/batchsystemtest"
	"github.com/gafferhq/gaffer/examples/niceadapter"
)

// The suite is tested against the worked adapter (examples/niceadapter)
// with bugs planted in it, the ones a trial adapter really had. Each run
// of the suite happens in a child process (this test binary again), so
// that its failures are the child's and can be read from its output.

const envBug = "BATCHSYSTEMTEST_PLANTED_BUG"

// killForgetsQueued kills only the jobs it has started: a job killed
// while queued stays in the queue, runs when a slot frees, and is
// reported.
type killForgetsQueued struct{ *niceadapter.System }

func (k killForgetsQueued) Kill(ctx context.Context, ids []batchsystem.ID) error {
	running, err := k.Running(ctx)
	if err != nil {
		return err
	}
	var started []batchsystem.ID
	for _, id := range ids {
		if _, ok := running[id]; ok {
			started = append(started, id)
		}
	}
	return k.System.Kill(ctx, started)
}

// shutdownLeavesProcesses refuses calls after Shutdown, as the contract
// says, but never stops its workers.
type shutdownLeavesProcesses struct {
	*niceadapter.System
	mu     sync.Mutex
	closed bool
}

func (s *shutdownLeavesProcesses) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

func (s *shutdownLeavesProcesses) Issue(ctx context.Context, spec batchsystem.JobSpec) (batchsystem.ID, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return 0, batchsystem.ErrShutdown
	}
	return s.System.Issue(ctx, spec)
}

func (s *shutdownLeavesProcesses) WaitFinished(ctx context.Context, maxWait time.Duration) (*batchsystem.FinishedJob, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, batchsystem.ErrShutdown
	}
	return s.System.WaitFinished(ctx, maxWait)
}

// statusForRunning explains a wait for jobs that are not waiting.
type statusForRunning struct{ *niceadapter.System }

func (s statusForRunning) SchedulingStatus(id batchsystem.ID) string { return "waiting for a slot" }

func planted(t *testing.T, bug string) batchsystem.BatchSystem {
	nice, err := niceadapter.New(niceadapter.Options{Slots: 2})
	require.NoError(t, err)
	// Whatever the bug, nothing outlives the test.
	t.Cleanup(func() { _ = nice.Shutdown(context.Background()) })
	switch bug {
	case "none":
		return nice
	case "kill-forgets-queued":
		return killForgetsQueued{nice}
	case "shutdown-leaves-processes":
		return &shutdownLeavesProcesses{System: nice}
	case "status-for-running":
		return statusForRunning{nice}
	}
	t.Fatalf("unknown bug %q", bug)
	return nil
}

// TestSuiteOnPlantedBug runs the whole suite on the adapter with the bug
// named by the environment; TestSuiteCatchesPlantedBugs starts it.
func TestSuiteOnPlantedBug(t *testing.T) {
	bug := os.Getenv(envBug)
	if bug == "" {
		t.Skip("run by TestSuiteCatchesPlantedBugs")
	}
	batchsystemtest.Run(t, batchsystemtest.Config{New: func(t *testing.T) batchsystem.BatchSystem { return planted(t, bug) }})
}

var failed = regexp.MustCompile(`--- FAIL: TestSuiteOnPlantedBug/(\S+)`)

func TestSuiteCatchesPlantedBugs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the suite four times, in child processes")
	}
	for _, c := range []struct {
		bug  string
		fail []string // the suite's checks that must fail, and no others
	}{
		{"none", nil},
		{"kill-forgets-queued", []string{"KilledWhileQueuedNeverRuns"}},
		{"shutdown-leaves-processes", []string{"ShutdownLeavesNoProcess"}},
		{"status-for-running", []string{"Optional/SchedulingStatuser", "Optional"}},
	} {
		t.Run(c.bug, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestSuiteOnPlantedBug$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), envBug+"="+c.bug)
			out, err := cmd.CombinedOutput()
			var got []string
			for _, m := range failed.FindAllStringSubmatch(string(out), -1) {
				got = append(got, m[1])
			}
			if c.fail == nil {
				require.NoError(t, err, "the adapter without a bug passes:\n%s", out)
				return
			}
			require.Error(t, err, "the suite missed the bug:\n%s", out)
			require.ElementsMatch(t, c.fail, got, "the suite fails on the check for the bug, and only there:\n%s", out)
		})
	}
}
