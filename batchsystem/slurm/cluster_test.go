package slurm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/batchsystem/batchsystemtest"
	"github.com/gafferhq/gaffer/batchsystem/pilot"
)

// Tests against a real Slurm cluster. They run only with GAFFER_SLURM=1,
// and then fail, not skip, when the cluster cannot be reached:
//
//	scripts/slurm-cluster.sh up && GAFFER_SLURM=1 go test ./batchsystem/slurm

// countingRunner runs the real commands and counts and times them.
type countingRunner struct {
	inner Runner
	mu    sync.Mutex
	calls map[string]int
	spent map[string]time.Duration
}

func newCountingRunner() *countingRunner {
	return &countingRunner{inner: ExecRunner{}, calls: map[string]int{}, spent: map[string]time.Duration{}}
}

func (c *countingRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	start := time.Now()
	out, err := c.inner.Run(ctx, name, args...)
	c.mu.Lock()
	c.calls[name]++
	c.spent[name] += time.Since(start)
	c.mu.Unlock()
	return out, err
}

func (c *countingRunner) count(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[name]
}

func (c *countingRunner) mean(name string) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls[name] == 0 {
		return 0
	}
	return c.spent[name] / time.Duration(c.calls[name])
}

func needCluster(t *testing.T) {
	t.Helper()
	if os.Getenv("GAFFER_SLURM") != "1" {
		t.Skip("needs a Slurm cluster; run: scripts/slurm-cluster.sh up && GAFFER_SLURM=1 go test ./batchsystem/slurm")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := ExecRunner{}.Run(ctx, "scontrol", "ping")
	require.NoError(t, err, "GAFFER_SLURM=1 but the cluster is not reachable; start it with scripts/slurm-cluster.sh up")
	require.Contains(t, string(out), "UP", "slurmctld is not up")
}

// clusterSystem returns a BatchSystem on the real cluster that polls
// every 250 ms and is shut down at the end of the test.
func clusterSystem(t *testing.T, r Runner) *BatchSystem {
	t.Helper()
	if r == nil {
		r = ExecRunner{}
	}
	b, err := New(Options{Runner: r, PollInterval: 250 * time.Millisecond, NamePrefix: "gaffertest"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Shutdown(context.Background()) })
	return b
}

func clusterSpec(t *testing.T, id, script string) batchsystem.JobSpec {
	dir := t.TempDir()
	return batchsystem.JobSpec{
		JobID: id, Name: id, Kind: "clustertest", Attempt: 1,
		Command: []string{"/bin/sh", "-c", script},
		Dir:     dir, LogPath: filepath.Join(dir, "worker.log"),
		Requirements: batchsystem.Requirements{Cores: 0.1, Memory: 16 << 20, Disk: 1 << 20},
	}
}

// waitReport waits for the next report; jobs on the real cluster take
// seconds, so the bound is generous.
func waitReport(t *testing.T, b *BatchSystem, within time.Duration) *batchsystem.FinishedJob {
	t.Helper()
	f, err := b.WaitFinished(t.Context(), within)
	require.NoError(t, err)
	require.NotNil(t, f, "no job reported within %v", within)
	return f
}

// activeInSlurm lists which of the Slurm IDs squeue shows pending,
// running or completing.
func activeInSlurm(t *testing.T, ids []string) []string {
	t.Helper()
	out, err := ExecRunner{}.Run(t.Context(), "squeue", "--noheader", "--states=PENDING,RUNNING,COMPLETING,CONFIGURING,SUSPENDED",
		"--jobs="+strings.Join(ids, ","), "--format=%i")
	if err != nil && strings.Contains(stderrOf(err), "Invalid job id") {
		return nil
	}
	require.NoError(t, err)
	return strings.Fields(string(out))
}

func TestClusterSuccess(t *testing.T) {
	needCluster(t)
	t.Parallel()
	b := clusterSystem(t, nil)
	spec := clusterSpec(t, "ok", `echo "out $GREETING"; echo "err" >&2; pwd`)
	spec.Env = map[string]string{"GREETING": "it's $me"}
	id, err := b.Issue(t.Context(), spec)
	require.NoError(t, err)
	sid, ok := b.BackingID(id)
	require.True(t, ok)
	f := waitReport(t, b, time.Minute)
	require.Equal(t, id, f.ID)
	require.Equal(t, 0, f.ExitCode)
	require.Equal(t, batchsystem.Finished, f.Reason)
	require.Equal(t, sid, f.BackingID)
	log, err := os.ReadFile(spec.LogPath)
	require.NoError(t, err)
	require.Equal(t, "out it's $me\nerr\n"+spec.Dir+"\n", string(log), "stdout and stderr in LogPath, run in Dir")
}

func TestClusterFailureExitCode(t *testing.T) {
	needCluster(t)
	t.Parallel()
	b := clusterSystem(t, nil)
	id, err := b.Issue(t.Context(), clusterSpec(t, "fail", "exit 3"))
	require.NoError(t, err)
	f := waitReport(t, b, time.Minute)
	require.Equal(t, id, f.ID)
	require.Equal(t, 3, f.ExitCode)
	require.Equal(t, batchsystem.Failed, f.Reason)
}

// Slurm checks time limits on a timer of about 30 s, and --time has minute
// granularity, so this takes 60 to 90 s.
func TestClusterTimeLimit(t *testing.T) {
	needCluster(t)
	t.Parallel()
	b := clusterSystem(t, nil)
	spec := clusterSpec(t, "slow", "sleep 600")
	spec.Requirements.Walltime = time.Second // Slurm makes it a minute
	id, err := b.Issue(t.Context(), spec)
	require.NoError(t, err)
	f := waitReport(t, b, 4*time.Minute)
	require.Equal(t, id, f.ID)
	require.Equal(t, batchsystem.Killed, f.Reason)
	require.NotZero(t, f.ExitCode, "a timed-out job never reports success")
	require.Contains(t, f.Message, "TIMEOUT")
	require.GreaterOrEqual(t, f.WallTime, time.Minute)
}

func TestClusterKill(t *testing.T) {
	needCluster(t)
	t.Parallel()
	b := clusterSystem(t, nil)
	id, err := b.Issue(t.Context(), clusterSpec(t, "victim", "sleep 600"))
	require.NoError(t, err)
	pending, err := b.Issue(t.Context(), clusterSpec(t, "pending", "sleep 600"))
	require.NoError(t, err)
	// Hold the second job so it is killed while pending.
	psid, _ := b.BackingID(pending)
	_, err = ExecRunner{}.Run(t.Context(), "scontrol", "hold", psid)
	require.NoError(t, err)
	sid, _ := b.BackingID(id)
	require.Eventually(t, func() bool {
		r, err := b.Running(t.Context())
		return err == nil && r[id] > 0
	}, time.Minute, 50*time.Millisecond, "job never ran")

	rec, err := b.Describe(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, "RUNNING", rec["JobState"])
	require.True(t, strings.HasSuffix(rec["StdOut"], "worker.log"), rec["StdOut"])
	require.Equal(t, rec["StdOut"], rec["StdErr"], "stdout and stderr share LogPath")
	require.Eventually(t, func() bool {
		return strings.Contains(b.SchedulingStatus(pending), "JobHeld") // JobHeldAdmin when root holds it
	}, time.Minute, 50*time.Millisecond, "the pending reason reaches SchedulingStatus")

	require.NoError(t, b.Kill(t.Context(), []batchsystem.ID{id, pending, 424242}))
	require.Empty(t, activeInSlurm(t, []string{sid, psid}), "Kill returns once Slurm shows the jobs stopped")
	issued, err := b.Issued(t.Context())
	require.NoError(t, err)
	require.Empty(t, issued)

	after, err := b.Issue(t.Context(), clusterSpec(t, "after", "true"))
	require.NoError(t, err)
	require.Equal(t, after, waitReport(t, b, time.Minute).ID, "killed jobs are never reported")
	f, err := b.WaitFinished(t.Context(), time.Second)
	require.NoError(t, err)
	require.Nil(t, f)
}

func TestClusterShutdownLeavesNoJob(t *testing.T) {
	needCluster(t)
	t.Parallel()
	b, err := New(Options{PollInterval: 250 * time.Millisecond, NamePrefix: "gaffertest"})
	require.NoError(t, err)
	var sids []string
	for i := range 5 {
		id, err := b.Issue(t.Context(), clusterSpec(t, fmt.Sprint("s", i), "sleep 600"))
		require.NoError(t, err)
		sid, _ := b.BackingID(id)
		sids = append(sids, sid)
	}
	require.NotEmpty(t, activeInSlurm(t, sids))
	require.NoError(t, b.Shutdown(t.Context()))
	require.Empty(t, activeInSlurm(t, sids), "no job of ours is left in squeue")
}

func TestClusterInsufficientResources(t *testing.T) {
	needCluster(t)
	t.Parallel()
	b := clusterSystem(t, nil)
	spec := clusterSpec(t, "huge", "true")
	spec.Requirements.Memory = 1 << 50
	_, err := b.Issue(t.Context(), spec)
	require.ErrorIs(t, err, batchsystem.ErrInsufficientResources)
	require.Contains(t, err.Error(), "memory")
}

// TestClusterAdopt submits a job with one BatchSystem, abandons it (as a
// crashed leader would) and lets a second one adopt it.
func TestClusterAdopt(t *testing.T) {
	needCluster(t)
	t.Parallel()
	first, err := New(Options{PollInterval: time.Hour, NamePrefix: "gaffertest"})
	require.NoError(t, err)
	spec := clusterSpec(t, "orphan", "sleep 1; exit 7")
	id, err := first.Issue(t.Context(), spec)
	require.NoError(t, err)
	sid, _ := first.BackingID(id)
	// The first leader "crashes": it never polls or cancels again.
	second := clusterSystem(t, nil)
	aid, err := second.Adopt(t.Context(), spec, sid)
	require.NoError(t, err)
	f := waitReport(t, second, time.Minute)
	require.Equal(t, aid, f.ID)
	require.Equal(t, 7, f.ExitCode)
	require.Equal(t, sid, f.BackingID)
}

// TestClusterThousandJobs runs 1,000 jobs and counts the scheduler queries:
// one squeue per poll (1,000 IDs fit one query), however many jobs.
func TestClusterThousandJobs(t *testing.T) {
	needCluster(t)
	const n = 1000
	const interval = 500 * time.Millisecond
	r := newCountingRunner()
	b, err := New(Options{Runner: r, PollInterval: interval, NamePrefix: "gaffertest"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Shutdown(context.Background()) })
	dir := t.TempDir()

	start := time.Now()
	ids := map[batchsystem.ID]bool{}
	for i := range n {
		spec := batchsystem.JobSpec{
			JobID: fmt.Sprint("k", i), Kind: "thousand", Command: []string{"/bin/sh", "-c", fmt.Sprintf("exit %d", i%3)},
			Dir: dir, LogPath: "/dev/null",
			Requirements: batchsystem.Requirements{Cores: 0.1, Memory: 16 << 20},
		}
		id, err := b.Issue(t.Context(), spec)
		require.NoError(t, err)
		ids[id] = true
	}
	submitted := time.Since(start)
	codes := map[int]int{}
	for len(ids) > 0 {
		f := waitReport(t, b, 5*time.Minute)
		require.True(t, ids[f.ID], "job %d reported once", f.ID)
		delete(ids, f.ID)
		codes[f.ExitCode]++
	}
	elapsed := time.Since(start)
	polls := b.polls.Load()
	t.Logf("%d jobs: submitted in %v (%v per sbatch), all reported after %v; %d polls, %d squeue (mean %v), %d sacct, %d sbatch",
		n, submitted.Round(time.Millisecond), r.mean("sbatch").Round(time.Microsecond), elapsed.Round(time.Millisecond),
		polls, r.count("squeue"), r.mean("squeue").Round(time.Microsecond), r.count("sacct"), r.count("sbatch"))
	require.Equal(t, map[int]int{0: 334, 1: 333, 2: 333}, codes)
	require.Equal(t, n, r.count("sbatch"))
	require.LessOrEqual(t, int64(r.count("squeue")), polls, "one squeue per poll for 1,000 jobs")
	require.LessOrEqual(t, polls, int64(elapsed/interval)+1, "at most one query set per interval")
}

// TestClusterOverhead measures, for sequential trivial jobs, the time from
// Issue to the report, and logs it; it asserts nothing about time. Run with
// -v to see the figures (docs/slurm.md quotes them).
func TestClusterOverhead(t *testing.T) {
	needCluster(t)
	for _, interval := range []time.Duration{100 * time.Millisecond, time.Second} {
		r := newCountingRunner()
		b, err := New(Options{Runner: r, PollInterval: interval, NamePrefix: "gaffertest"})
		require.NoError(t, err)
		var lat []time.Duration
		for i := range 10 {
			start := time.Now()
			id, err := b.Issue(t.Context(), clusterSpec(t, fmt.Sprint("lat", i), "true"))
			require.NoError(t, err)
			f := waitReport(t, b, time.Minute)
			require.Equal(t, id, f.ID)
			require.Equal(t, 0, f.ExitCode)
			lat = append(lat, time.Since(start))
		}
		require.NoError(t, b.Shutdown(t.Context()))
		sorted := slices.Clone(lat)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
		t.Logf("poll interval %v: issue->report of 'true' over 10 sequential jobs: min %v, median %v, max %v; sbatch mean %v, squeue mean %v",
			interval, sorted[0].Round(time.Millisecond), sorted[len(sorted)/2].Round(time.Millisecond),
			sorted[len(sorted)-1].Round(time.Millisecond), r.mean("sbatch").Round(time.Microsecond), r.mean("squeue").Round(time.Microsecond))
	}
}

// TestClusterConformance runs the shared BatchSystem suite on the cluster.
func TestClusterConformance(t *testing.T) {
	needCluster(t)
	batchsystemtest.Run(t, batchsystemtest.Config{
		New: func(t *testing.T) batchsystem.BatchSystem {
			b, err := New(Options{PollInterval: 250 * time.Millisecond, NamePrefix: "gaffertest"})
			require.NoError(t, err)
			return b
		},
		Timeout:      2 * time.Minute,
		PilotCommand: []string{os.Args[0], pilot.Arg},
	})
}

// clusterAccounting tells which Accounting setting fits the running
// cluster: slurmdbd, or jobcomp/filetxt when accounting storage is off.
func clusterAccounting(t *testing.T) Accounting {
	t.Helper()
	out, err := ExecRunner{}.Run(t.Context(), "scontrol", "show", "config")
	require.NoError(t, err)
	if strings.Contains(string(out), "accounting_storage/slurmdbd") {
		return AccountingSacct
	}
	return AccountingJobComp
}

// TestClusterSacct runs the accounting query the poller uses for jobs the
// controller has forgotten, against the real sacct. (The poller reaches it
// only after MinJobAge, an hour on the test cluster.)
func TestClusterSacct(t *testing.T) {
	needCluster(t)
	t.Parallel()
	acct := clusterAccounting(t)
	b, err := New(Options{PollInterval: 250 * time.Millisecond, NamePrefix: "gaffertest", Accounting: acct})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Shutdown(context.Background()) })
	since := time.Now()
	id, err := b.Issue(t.Context(), clusterSpec(t, "acct", "exit 5"))
	require.NoError(t, err)
	sid, _ := b.BackingID(id)
	require.Equal(t, 5, waitReport(t, b, time.Minute).ExitCode)
	var st []jobStatus
	// slurmdbd receives job records asynchronously, a second or so late,
	// and its first record of a short job may name it "allocation".
	require.Eventually(t, func() bool {
		st, err = b.sacct(t.Context(), []string{sid, "999999"}, since)
		return err == nil && len(st) == 1 && st[0].State == "FAILED" && st[0].Name != "allocation"
	}, time.Minute, 200*time.Millisecond, "sacct (%s) never showed job %s as FAILED: %v %v", acct, sid, st, err)
	code, reason := exitFor(st[0])
	require.Equal(t, 5, code)
	require.Equal(t, batchsystem.Failed, reason)
	require.Equal(t, "gaffertest_clustertest_acct", st[0].Name)
}
