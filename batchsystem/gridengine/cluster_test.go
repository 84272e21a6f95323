package gridengine

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
)

// Tests against a real Grid Engine cluster. They run only with
// GAFFER_GRIDENGINE=1, and then fail, not skip, when the cluster cannot be
// reached:
//
//	scripts/gridengine-cluster.sh up && GAFFER_GRIDENGINE=1 go test ./batchsystem/gridengine

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

func (c *countingRunner) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	start := time.Now()
	out, err := c.inner.Run(ctx, stdin, name, args...)
	took := time.Since(start)
	c.mu.Lock()
	for _, key := range callKeys(name, args) {
		c.calls[key]++
		c.spent[key] += took
	}
	c.mu.Unlock()
	return out, err
}

// callKeys are the counters one command adds to: its name, and its name
// with its first argument ("qstat -xml" is the poll's listing, "qstat -j"
// the occasional detail).
func callKeys(name string, args []string) []string {
	if len(args) == 0 {
		return []string{name}
	}
	return []string{name, name + " " + args[0]}
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
	if os.Getenv("GAFFER_GRIDENGINE") != "1" {
		t.Skip("needs a Grid Engine cluster; run: scripts/gridengine-cluster.sh up && GAFFER_GRIDENGINE=1 go test ./batchsystem/gridengine")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err := ExecRunner{}.Run(ctx, nil, "qstat")
	require.NoError(t, err, "GAFFER_GRIDENGINE=1 but qstat does not answer; start the cluster with scripts/gridengine-cluster.sh up")
}

// clusterOptions are the options of every test on the cluster: a short
// poll, so that tests are quick, and a name prefix that tells the tests'
// jobs from others.
func clusterOptions(r Runner) Options {
	return Options{Runner: r, PollInterval: 250 * time.Millisecond, NamePrefix: "gaffertest"}
}

// clusterSystem returns a BatchSystem on the real cluster, shut down at
// the end of the test.
func clusterSystem(t *testing.T, r Runner) *BatchSystem {
	t.Helper()
	b, err := New(clusterOptions(r))
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

// waitReport waits for the next report; jobs on the real cluster take a
// second or more, so the bound is generous.
func waitReport(t *testing.T, b *BatchSystem, within time.Duration) *batchsystem.FinishedJob {
	t.Helper()
	f, err := b.WaitFinished(t.Context(), within)
	require.NoError(t, err)
	require.NotNil(t, f, "no job reported within %v", within)
	return f
}

// inQstat lists which of the job numbers qstat shows, in any state.
func inQstat(t *testing.T, numbers []string) []string {
	t.Helper()
	out, err := ExecRunner{}.Run(t.Context(), nil, "qstat", "-xml")
	require.NoError(t, err)
	listed, err := parseQstatXML(out, time.Local)
	require.NoError(t, err)
	var res []string
	for _, q := range listed {
		if slices.Contains(numbers, q.Number) {
			res = append(res, q.Number+":"+q.State)
		}
	}
	return res
}

// TestClusterConformance runs the shared BatchSystem suite on the cluster.
func TestClusterConformance(t *testing.T) {
	needCluster(t)
	batchsystemtest.Run(t, batchsystemtest.Config{
		New: func(t *testing.T) batchsystem.BatchSystem {
			b, err := New(clusterOptions(nil))
			require.NoError(t, err)
			return b
		},
		Timeout: 2 * time.Minute,
	})
}

func TestClusterSuccess(t *testing.T) {
	needCluster(t)
	t.Parallel()
	r := newCountingRunner()
	b := clusterSystem(t, r)
	spec := clusterSpec(t, "ok", `echo "out $GREETING"; echo "err" >&2; pwd; echo "slots $NSLOTS"`)
	spec.Env = map[string]string{"GREETING": "it's $me"}
	spec.Dir = filepath.Join(spec.Dir, "a dir with spaces and $x")
	require.NoError(t, os.Mkdir(spec.Dir, 0o755))
	spec.Requirements.Cores = 2
	id, err := b.Issue(t.Context(), spec)
	require.NoError(t, err)
	number, ok := b.BackingID(id)
	require.True(t, ok)
	f := waitReport(t, b, time.Minute)
	require.Equal(t, id, f.ID)
	require.Equal(t, 0, f.ExitCode, f.Message)
	require.Equal(t, batchsystem.Finished, f.Reason)
	require.Equal(t, number, f.BackingID)
	require.Greater(t, f.WallTime, time.Duration(0))
	log, err := os.ReadFile(spec.LogPath)
	require.NoError(t, err)
	require.Equal(t, "out it's $me\nerr\n"+spec.Dir+"\nslots 2\n", string(log), "stdout and stderr in LogPath, run in Dir, two slots")
	require.Zero(t, r.count("qacct"), "the job's status file told how it ended")
	require.NoFileExists(t, filepath.Join(spec.Dir, ".gridengine-exit."+number), "and was removed")
}

// The binaries called directly, as DebianRunner does, behave as the
// wrapper scripts do.
func TestClusterDebianRunner(t *testing.T) {
	needCluster(t)
	t.Parallel()
	r, err := DebianRunner()
	require.NoError(t, err, "the test cell runs Debian's packages")
	b := clusterSystem(t, r)
	spec := clusterSpec(t, "debian", "echo $SGE_CELL; exit 4")
	id, err := b.Issue(t.Context(), spec)
	require.NoError(t, err)
	f := waitReport(t, b, time.Minute)
	require.Equal(t, id, f.ID)
	require.Equal(t, 4, f.ExitCode)
	log, err := os.ReadFile(spec.LogPath)
	require.NoError(t, err)
	require.Equal(t, "default\n", string(log), "qsub -V passed the runner's environment on")
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

// Exit statuses 99 and 100 would make Grid Engine reschedule the job or
// hold it in error state; the job script exits 1 instead, so the job ends
// normally. The status file keeps the command's own status; without one
// (no job folder), qacct has the 1.
func TestClusterReservedExitStatuses(t *testing.T) {
	needCluster(t)
	t.Parallel()
	o := clusterOptions(nil)
	o.WorkDir = t.TempDir()
	b, err := New(o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Shutdown(context.Background()) })
	specs := map[batchsystem.ID]batchsystem.JobSpec{}
	want := map[batchsystem.ID]int{}
	for _, code := range []int{99, 100} {
		for _, folder := range []bool{true, false} {
			spec := clusterSpec(t, fmt.Sprint("exit", code, folder), fmt.Sprint("exit ", code))
			if !folder {
				spec.Dir = ""
			}
			id, err := b.Issue(t.Context(), spec)
			require.NoError(t, err)
			specs[id] = spec
			want[id] = 1
			if folder {
				want[id] = code
			}
		}
	}
	for range specs {
		f := waitReport(t, b, time.Minute)
		require.Equal(t, want[f.ID], f.ExitCode, f.Message)
		require.Equal(t, batchsystem.Failed, f.Reason)
		log, err := os.ReadFile(specs[f.ID].LogPath)
		require.NoError(t, err)
		require.Contains(t, string(log), "which Grid Engine reserves")
	}
}

// h_rt is enforced within seconds: a job asking for 2 s that sleeps
// 600 s is killed, and reported Killed with a message naming h_rt.
func TestClusterTimeLimit(t *testing.T) {
	needCluster(t)
	t.Parallel()
	b := clusterSystem(t, nil)
	spec := clusterSpec(t, "slow", "echo started; sleep 600")
	spec.Requirements.Walltime = 2 * time.Second
	id, err := b.Issue(t.Context(), spec)
	require.NoError(t, err)
	f := waitReport(t, b, 2*time.Minute)
	require.Equal(t, id, f.ID)
	require.Equal(t, batchsystem.Killed, f.Reason)
	require.Equal(t, 137, f.ExitCode, "SIGKILL")
	require.Contains(t, f.Message, "h_rt time limit of 0:00:02")
	require.GreaterOrEqual(t, f.WallTime, 2*time.Second)
}

// A job Grid Engine cannot start (its working directory is missing) goes
// to error state, Eqw, where it would stay: it is reported as Error with
// Grid Engine's reason, and deleted.
func TestClusterErrorState(t *testing.T) {
	needCluster(t)
	t.Parallel()
	b := clusterSystem(t, nil)
	spec := clusterSpec(t, "eqw", "true")
	spec.Dir = filepath.Join(spec.Dir, "missing")
	spec.LogPath = ""
	id, err := b.Issue(t.Context(), spec)
	require.NoError(t, err)
	number, _ := b.BackingID(id)
	f := waitReport(t, b, time.Minute)
	require.Equal(t, id, f.ID)
	require.Equal(t, batchsystem.Error, f.Reason)
	require.Equal(t, batchsystem.ExitUnavailable, f.ExitCode)
	require.Contains(t, f.Message, "error state")
	require.Contains(t, f.Message, "chdir", "Grid Engine's reason reaches the message")
	require.Eventually(t, func() bool { return len(inQstat(t, []string{number})) == 0 },
		30*time.Second, 100*time.Millisecond, "the job in error state was deleted")
}

func TestClusterKill(t *testing.T) {
	needCluster(t)
	t.Parallel()
	b := clusterSystem(t, nil)
	id, err := b.Issue(t.Context(), clusterSpec(t, "victim", "sleep 600"))
	require.NoError(t, err)
	number, _ := b.BackingID(id)
	// A job the scheduler may not start for an hour (qsub -a), then held:
	// killed while it waits.
	o := clusterOptions(nil)
	o.ExtraArgs = []string{"-a", time.Now().Add(time.Hour).Format("200601021504")}
	later, err := New(o)
	require.NoError(t, err)
	later.reasonEvery = time.Second
	t.Cleanup(func() { _ = later.Shutdown(context.Background()) })
	held, err := later.Issue(t.Context(), clusterSpec(t, "held", "sleep 600"))
	require.NoError(t, err)
	hnumber, _ := later.BackingID(held)
	_, err = ExecRunner{}.Run(t.Context(), nil, "qhold", hnumber)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		r, err := b.Running(t.Context())
		_, ok := r[id]
		return err == nil && ok
	}, time.Minute, 50*time.Millisecond, "job never ran")
	require.Eventually(t, func() bool {
		s := later.SchedulingStatus(held)
		return strings.Contains(s, "hqw (on hold): Job is in hold state")
	}, time.Minute, 50*time.Millisecond, "the hold and qstat -j's reason reach SchedulingStatus")

	require.NoError(t, b.Kill(t.Context(), []batchsystem.ID{id, 424242}))
	require.NoError(t, later.Kill(t.Context(), []batchsystem.ID{held}))
	require.Empty(t, inQstat(t, []string{number, hnumber}), "Kill returns once the jobs left qstat")
	for _, s := range []*BatchSystem{b, later} {
		issued, err := s.Issued(t.Context())
		require.NoError(t, err)
		require.Empty(t, issued)
	}

	after, err := b.Issue(t.Context(), clusterSpec(t, "after", "true"))
	require.NoError(t, err)
	require.Equal(t, after, waitReport(t, b, time.Minute).ID, "killed jobs are never reported")
	f, err := b.WaitFinished(t.Context(), 2*time.Second)
	require.NoError(t, err)
	require.Nil(t, f)
}

func TestClusterShutdownLeavesNoJob(t *testing.T) {
	needCluster(t)
	t.Parallel()
	b, err := New(clusterOptions(nil))
	require.NoError(t, err)
	var numbers []string
	for i := range 5 {
		id, err := b.Issue(t.Context(), clusterSpec(t, fmt.Sprint("s", i), "sleep 600"))
		require.NoError(t, err)
		n, _ := b.BackingID(id)
		numbers = append(numbers, n)
	}
	require.NotEmpty(t, inQstat(t, numbers))
	require.NoError(t, b.Shutdown(t.Context()))
	require.Empty(t, inQstat(t, numbers), "no job of ours is left in qstat")
}

func TestClusterInsufficientResources(t *testing.T) {
	needCluster(t)
	t.Parallel()
	b := clusterSystem(t, nil)
	for resource, mod := range map[string]func(*batchsystem.Requirements){
		"memory": func(r *batchsystem.Requirements) { r.Memory = 1 << 50 },
		"cores":  func(r *batchsystem.Requirements) { r.Cores = 5000 },
	} {
		spec := clusterSpec(t, "huge-"+resource, "true")
		mod(&spec.Requirements)
		_, err := b.Issue(t.Context(), spec)
		require.ErrorIs(t, err, batchsystem.ErrInsufficientResources, resource)
		var ire *batchsystem.InsufficientResourcesError
		require.ErrorAs(t, err, &ire)
		require.Equal(t, resource, ire.Resource, "%v", err)
		require.Contains(t, err.Error(), "huge-"+resource, "the error names the job")
	}
}

// TestClusterAdopt submits a job with one BatchSystem, abandons it (as a
// crashed leader would) and lets a second one adopt it; a third adopts a
// number that names someone else's job, and leaves that job alone.
func TestClusterAdopt(t *testing.T) {
	needCluster(t)
	t.Parallel()
	// The first leader "crashes": its reports are never read.
	first := clusterSystem(t, nil)
	spec := clusterSpec(t, "orphan", "sleep 2; exit 7")
	id, err := first.Issue(t.Context(), spec)
	require.NoError(t, err)
	number, _ := first.BackingID(id)
	second := clusterSystem(t, nil)
	aid, err := second.Adopt(t.Context(), spec, number)
	require.NoError(t, err)
	f := waitReport(t, second, time.Minute)
	require.Equal(t, aid, f.ID)
	require.Equal(t, 7, f.ExitCode)
	require.Equal(t, number, f.BackingID)

	stranger := clusterSpec(t, "stranger", "sleep 600")
	sid, err := first.Issue(t.Context(), stranger)
	require.NoError(t, err)
	snumber, _ := first.BackingID(sid)
	third := clusterSystem(t, nil)
	tid, err := third.Adopt(t.Context(), clusterSpec(t, "someone-else", "true"), snumber)
	require.NoError(t, err)
	require.NoError(t, third.Kill(t.Context(), []batchsystem.ID{tid}), "a kill before any poll waits for the name check")
	require.NotEmpty(t, inQstat(t, []string{snumber}), "a job under another name is never deleted")
}

// TestClusterAccounting reads a job's end from qacct after it left qstat,
// through the poller's own query: a job without a folder writes no status
// file.
func TestClusterAccounting(t *testing.T) {
	needCluster(t)
	t.Parallel()
	r := newCountingRunner()
	o := clusterOptions(r)
	o.WorkDir = t.TempDir()
	b, err := New(o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Shutdown(context.Background()) })
	spec := clusterSpec(t, "acct", "sleep 1; exit 5")
	spec.Dir = ""
	id, err := b.Issue(t.Context(), spec)
	require.NoError(t, err)
	f := waitReport(t, b, time.Minute)
	require.Equal(t, id, f.ID)
	require.Equal(t, 5, f.ExitCode)
	require.GreaterOrEqual(t, f.WallTime, time.Second)
	require.Positive(t, r.count("qacct"), "the exit status comes from accounting")
}

// TestClusterThousandJobs runs 1,000 jobs and counts the scheduler
// queries: one qstat per poll, however many jobs, and qacct at most once
// per poll.
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
	t.Logf("%d jobs: submitted in %v (%v per qsub), all reported after %v; %d polls, %d qstat -xml (mean %v), %d qstat -j, %d qacct (mean %v), %d qsub",
		n, submitted.Round(time.Millisecond), r.mean("qsub").Round(time.Microsecond), elapsed.Round(time.Millisecond),
		polls, r.count("qstat -xml"), r.mean("qstat -xml").Round(time.Microsecond), r.count("qstat -j"),
		r.count("qacct"), r.mean("qacct").Round(time.Microsecond), r.count("qsub"))
	require.Equal(t, map[int]int{0: 334, 1: 333, 2: 333}, codes)
	require.Equal(t, n, r.count("qsub"))
	require.LessOrEqual(t, int64(r.count("qstat -xml")), polls, "one qstat listing per poll for 1,000 jobs")
	require.LessOrEqual(t, int64(r.count("qacct")), polls, "at most one qacct per poll")
	require.LessOrEqual(t, polls, int64(elapsed/interval)+1, "at most one poll per interval")
}

// TestClusterOverhead measures, for sequential trivial jobs, the time from
// Issue to the report, and logs it; it asserts nothing about time. Run
// with -v to see the figures (docs/gridengine.md quotes them).
func TestClusterOverhead(t *testing.T) {
	needCluster(t)
	for _, interval := range []time.Duration{100 * time.Millisecond, time.Second} {
		r := newCountingRunner()
		o := clusterOptions(r)
		o.PollInterval = interval
		b, err := New(o)
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
		t.Logf("poll interval %v: issue->report of 'true' over 10 sequential jobs: min %v, median %v, max %v; qsub mean %v, qstat -xml mean %v, qacct mean %v (%d runs)",
			interval, sorted[0].Round(time.Millisecond), sorted[len(sorted)/2].Round(time.Millisecond),
			sorted[len(sorted)-1].Round(time.Millisecond), r.mean("qsub").Round(time.Microsecond),
			r.mean("qstat -xml").Round(time.Microsecond), r.mean("qacct").Round(time.Microsecond), r.count("qacct"))
	}
}
