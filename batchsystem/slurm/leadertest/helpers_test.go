package leadertest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem/slurm"
)

// pollInterval is the Slurm adapter's poll interval in these tests: short,
// so that tests are quick; the adapter's default is 5 s.
const pollInterval = 250 * time.Millisecond

const (
	envMarks = "GAFFER_LT_MARKS" // file the marking jobs append to
	envPhase = "GAFFER_LT_PHASE" // which leader submitted the job
)

func needCluster(t *testing.T) {
	t.Helper()
	if os.Getenv("GAFFER_SLURM") != "1" {
		t.Skip("needs a Slurm cluster; run: scripts/slurm-cluster.sh up && GAFFER_SLURM=1 go test ./batchsystem/slurm/leadertest")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "scontrol", "ping").CombinedOutput()
	require.NoError(t, err, "GAFFER_SLURM=1 but the cluster is not reachable (%s); start it with scripts/slurm-cluster.sh up", out)
	require.Contains(t, string(out), "UP", "slurmctld is not up")
}

var prefixSeq atomic.Int64

// uniquePrefix is a Slurm job-name prefix that no other test, and no
// other run of this binary, uses: squeue finds a test's jobs by it.
func uniquePrefix(tag string) string {
	return fmt.Sprintf("glt%d-%d-%s", os.Getpid(), prefixSeq.Add(1), tag)
}

// newSlurm returns a Slurm batch system for one test, shut down at its end.
func newSlurm(t *testing.T, prefix string) *slurm.BatchSystem {
	t.Helper()
	bs, err := slurm.New(slurm.Options{PollInterval: pollInterval, NamePrefix: prefix})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = bs.Shutdown(ctx)
	})
	return bs
}

// newLeader makes a leader on a fresh store in a temporary directory
// (absolute, so that Slurm jobs find it), closed at the test's end.
func newLeader(t *testing.T, cfg gaffer.Config) (*gaffer.Leader, string) {
	t.Helper()
	if cfg.Store == "" {
		cfg.Store = t.TempDir() + "/wf.db"
	}
	l, err := gaffer.NewLeader(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l, cfg.Store
}

// slurmJob is one line of squeue.
type slurmJob struct{ id, name, state string }

// jobsOf lists the Slurm jobs whose name starts with prefix and whose
// state is one of states ("" for the active ones: pending, running,
// completing and the like).
func jobsOf(t *testing.T, prefix, states string) []slurmJob {
	t.Helper()
	if states == "" {
		states = "PENDING,RUNNING,COMPLETING,CONFIGURING,SUSPENDED,REQUEUED,RESIZING,SIGNALING,STAGE_OUT,STOPPED"
	}
	out, err := exec.CommandContext(t.Context(), "squeue", "--noheader", "--states="+states, "--format=%i %200j %T").Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Fatalf("squeue: %v: %s", err, ee.Stderr)
	}
	require.NoError(t, err)
	var res []slurmJob
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) == 3 && strings.HasPrefix(f[1], prefix+"_") {
			res = append(res, slurmJob{f[0], f[1], f[2]})
		}
	}
	return res
}

// mark appends one line to the marks file: what happened, the gaffer job
// ID, the Slurm job ID and the phase (the leader that submitted the job).
// One short O_APPEND write per line, so lines of concurrent jobs do not
// mix.
func mark(what string, jc *gaffer.JobContext) {
	path := os.Getenv(envMarks)
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s %d %s %s %d\n", what, jc.ID(), os.Getenv("SLURM_JOB_ID"), os.Getenv(envPhase), jc.Attempt())
}

type markLine struct {
	what, slurmID, phase string
	job                  uint64
	attempt              int
}

func readMarks(t *testing.T, path string) []markLine {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	var res []markLine
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		var m markLine
		if n, _ := fmt.Sscanf(sc.Text(), "%s %d %s %s %d", &m.what, &m.job, &m.slurmID, &m.phase, &m.attempt); n == 5 {
			res = append(res, m)
		}
	}
	return res
}

func countMarks(marks []markLine, what string) int {
	n := 0
	for _, m := range marks {
		if m.what == what {
			n++
		}
	}
	return n
}

// waitFor polls cond until it holds, failing the test after within.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
