package gaffer_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem/local"
	"github.com/gafferhq/gaffer/internal/procs"
)

// Tests of the pool of worker processes (local.Workers), with real
// processes: this test binary is the worker (TestMain calls ServeWorker).

// poolMark is a line a pool test's job wrote: what, job, attempt, pid.
type poolMark struct {
	what         string
	id           uint64
	attempt, pid int
}

func readPoolMarks(t *testing.T, path string) []poolMark {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	defer f.Close()
	var out []poolMark
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 5 {
			continue // another kind of mark, or torn by a kill
		}
		var m poolMark
		m.what = fs[1]
		m.id, _ = strconv.ParseUint(fs[2], 10, 64)
		m.attempt, _ = strconv.Atoi(fs[3])
		m.pid, _ = strconv.Atoi(fs[4])
		out = append(out, m)
	}
	return out
}

type poolLeafIn struct {
	I       int
	SleepMS int
	Hold    bool // the first attempt sleeps a minute, to be killed
}

// PoolLeaf notes its job, attempt and worker pid, sleeps, and returns I.
var PoolLeaf = gaffer.MustRegister("pool.leaf", func(ctx context.Context, jc *gaffer.JobContext, in poolLeafIn) (int, error) {
	d, what := time.Duration(in.SleepMS)*time.Millisecond, "pleaf"
	if in.Hold && jc.Attempt() == 1 {
		d, what = time.Minute, "phold"
	}
	mark("%s %d %d %d", what, jc.ID(), jc.Attempt(), os.Getpid())
	time.Sleep(d)
	return in.I, nil
}, gaffer.Cores(1))

type poolRootIn struct {
	N, SleepMS, Hold int // Hold: the leaf to hold, or -1
	Flaky            bool
}

// PoolRoot adds N PoolLeaf children (and a CrashFlaky one if asked) and
// forwards their sum.
var PoolRoot = gaffer.MustRegister("pool.root", func(ctx context.Context, jc *gaffer.JobContext, in poolRootIn) (int, error) {
	mark("proot %d %d %d", jc.ID(), jc.Attempt(), os.Getpid())
	var parts []gaffer.Input[int]
	if in.Flaky {
		f := CrashFlaky.New(0)
		jc.AddChild(f)
		parts = append(parts, f.Result())
	}
	for i := range in.N {
		leaf := PoolLeaf.New(poolLeafIn{I: i, SleepMS: in.SleepMS, Hold: i == in.Hold})
		jc.AddChild(leaf)
		parts = append(parts, leaf.Result())
	}
	sum := Add.NewFrom(gaffer.Collect(parts...))
	jc.AddFollowOn(sum)
	return gaffer.Forward(jc, sum.Result())
})

func newPoolLeader(t *testing.T, cores float64, pool func(*local.Options)) *gaffer.Leader {
	t.Helper()
	opts := local.Options{Mode: local.Workers, Cores: cores, Memory: 8 << 30, Disk: 8 << 30}
	if pool != nil {
		pool(&opts)
	}
	bs, err := local.New(opts)
	require.NoError(t, err)
	t.Cleanup(func() { bs.Shutdown(context.Background()) })
	l, err := gaffer.NewLeader(gaffer.Config{Store: filepath.Join(t.TempDir(), "wf.db"), BatchSystem: bs, RetryBackoff: -1,
		DefaultRequirements: gaffer.Requirements{Cores: 0.1, Memory: 1 << 20, Disk: 1 << 20}})
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l
}

// A worker that has already run jobs, killed (SIGKILL) in the middle of
// one, loses only that job: it is retried, on another worker, and
// succeeds; no other job runs twice, and the workflow's value is right.
func TestPoolWorkerKilledMidJobIsRetried(t *testing.T) {
	if testing.Short() || !procs.Visible {
		t.Skip("starts processes and kills one by pid")
	}
	marks := filepath.Join(t.TempDir(), "marks")
	t.Setenv(envMarks, marks)
	t.Setenv(envPhase, "1")
	// One core, leaves of one core: jobs run one after another, each on
	// the worker the one before used.
	l := newPoolLeader(t, 1, nil)
	const n, hold = 6, 3
	killed := make(chan int, 1)
	go func() {
		defer close(killed)
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			ms := readPoolMarks(t, marks)
			for i, m := range ms {
				if m.what != "phold" {
					continue
				}
				if !slices.ContainsFunc(ms[:i], func(o poolMark) bool { return o.pid == m.pid }) {
					t.Errorf("the killed worker (pid %d) had run no job before: %v", m.pid, ms)
				}
				procs.Kill(m.pid)
				killed <- m.pid
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	got, err := gaffer.Run(t.Context(), l, PoolRoot.New(poolRootIn{N: n, Hold: hold}))
	require.NoError(t, err)
	require.Equal(t, n*(n-1)/2, got)
	pid, ok := <-killed
	require.True(t, ok, "no worker was killed")

	runs := map[uint64][]poolMark{}
	for _, m := range readPoolMarks(t, marks) {
		if m.what == "pleaf" || m.what == "phold" {
			runs[m.id] = append(runs[m.id], m)
		}
	}
	require.Len(t, runs, n)
	twice := 0
	for id, rs := range runs {
		if len(rs) == 1 {
			continue
		}
		twice++
		require.Len(t, rs, 2, "job %d", id)
		require.Equal(t, pid, rs[0].pid, "the killed worker ran its first attempt")
		require.Equal(t, 2, rs[1].attempt)
		require.NotEqual(t, pid, rs[1].pid, "the retry ran on another worker")
	}
	require.Equal(t, 1, twice, "only the killed worker's job ran again: %v", runs)
	s := l.Stats()
	require.Equal(t, n+3, s.Attempts, "root, %d leaves, the sum and one retry", n)
	require.Equal(t, 1, s.Failures)
}

// PidLeaf returns the pid of the worker that runs it; with Hog, it first
// takes 64 MiB that it keeps after it returns.
var PidLeaf = gaffer.MustRegister("pool.pid", func(ctx context.Context, jc *gaffer.JobContext, hog bool) (int, error) {
	if hog {
		b := make([]byte, 64<<20)
		for i := range b {
			b[i] = 1
		}
		hogged = append(hogged, b)
	}
	return os.Getpid(), nil
}, gaffer.Cores(1))

var hogged [][]byte

// PidRoot runs n PidLeaf jobs and returns their pids.
var PidRoot = gaffer.MustRegister("pool.pids", func(ctx context.Context, jc *gaffer.JobContext, in struct {
	N   int
	Hog bool
}) ([]int, error) {
	parts := make([]gaffer.Input[int], in.N)
	for i := range in.N {
		leaf := PidLeaf.New(in.Hog)
		jc.AddChild(leaf)
		parts[i] = leaf.Result()
	}
	list := IntList.NewFrom(gaffer.Collect(parts...))
	jc.AddFollowOn(list)
	return gaffer.Forward(jc, list.Result())
})

var IntList = gaffer.MustRegister("pool.list", func(ctx context.Context, jc *gaffer.JobContext, xs []int) ([]int, error) {
	return xs, nil
})

func countPids(pids []int) map[int]int {
	n := map[int]int{}
	for _, p := range pids {
		n[p]++
	}
	return n
}

// A worker is recycled after PoolOptions.JobsPerWorker jobs: no worker
// pid runs more than that many leaves, and workers are reused up to it.
func TestPoolWorkersAreRecycledAfterNJobs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	l := newPoolLeader(t, 1, func(o *local.Options) { o.Pool.JobsPerWorker = 3 })
	pids, err := gaffer.Run(t.Context(), l, PidRoot.New(struct {
		N   int
		Hog bool
	}{N: 9}))
	require.NoError(t, err)
	require.Len(t, pids, 9)
	counts := countPids(pids)
	most := 0
	for pid, n := range counts {
		require.LessOrEqual(t, n, 3, "pid %d ran %d leaves", pid, n)
		most = max(most, n)
	}
	require.Equal(t, 3, most, "a worker ran three leaves in a row: %v", counts)
	require.GreaterOrEqual(t, len(counts), 3, "nine leaves, three jobs per worker: %v", counts)
}

// A worker whose resident memory after a job is past PoolOptions.MaxRSS
// is recycled: leaves that each keep 64 MiB all run on fresh workers.
func TestPoolWorkersAreRecycledPastMaxRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	l := newPoolLeader(t, 1, func(o *local.Options) { o.Pool.MaxRSS = 48 << 20 })
	pids, err := gaffer.Run(t.Context(), l, PidRoot.New(struct {
		N   int
		Hog bool
	}{N: 4, Hog: true}))
	require.NoError(t, err)
	require.Len(t, countPids(pids), 4, "each leaf on a worker of its own: %v", pids)
}

// Noisy writes to standard output, through os.Stdout and (on Unix) the
// descriptor itself, bytes that look like the start of a frame, and
// returns its input.
var Noisy = gaffer.MustRegister("pool.noisy", func(ctx context.Context, jc *gaffer.JobContext, i int) (int, error) {
	garbage := "\x10\x00\x00\x00\xde\xad\xbe\xefr{\"out\":null}printed to stdout\n"
	fmt.Fprint(os.Stdout, garbage)
	if procs.Visible {
		fd1 := os.NewFile(1, "fd1")
		fd1.WriteString("written to descriptor 1\n")
	}
	cmd := exec.Command("sh", "-c", "echo a child printed this")
	cmd.Stdout = os.Stdout
	_ = cmd.Run() // where there is a shell
	return i, nil
})

var NoisyRoot = gaffer.MustRegister("pool.noisyroot", func(ctx context.Context, jc *gaffer.JobContext, n int) (int, error) {
	parts := make([]gaffer.Input[int], n)
	for i := range n {
		leaf := Noisy.New(i)
		jc.AddChild(leaf)
		parts[i] = leaf.Result()
	}
	sum := Add.NewFrom(gaffer.Collect(parts...))
	jc.AddFollowOn(sum)
	return gaffer.Forward(jc, sum.Result())
})

// A job that writes to standard output (with os.Stdout, the descriptor,
// or a child process) does not reach the channel to the leader: results
// are right, no attempt fails, and what it wrote is in its log.
func TestPoolJobWritingToStdoutDoesNotCorruptResults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	bs, err := local.New(local.Options{Mode: local.Workers, Cores: 2, Memory: 8 << 30, Disk: 8 << 30})
	require.NoError(t, err)
	t.Cleanup(func() { bs.Shutdown(context.Background()) })
	store := filepath.Join(t.TempDir(), "wf.db")
	l, err := gaffer.NewLeader(gaffer.Config{Store: store, BatchSystem: bs, RetryBackoff: -1, KeepSuccessLogs: true,
		DefaultRequirements: gaffer.Requirements{Cores: 0.1, Memory: 1 << 20, Disk: 1 << 20}})
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	const n = 30
	got, err := gaffer.Run(t.Context(), l, NoisyRoot.New(n))
	require.NoError(t, err)
	require.Equal(t, n*(n-1)/2, got)
	require.Zero(t, l.Stats().Failures)
	require.Equal(t, n+2, l.Stats().Attempts)
	require.NoError(t, l.Close())
	noisy := 0
	for _, a := range attempts(t, store, 0) {
		if a.Kind != "pool.noisy" {
			continue
		}
		noisy++
		require.NotEmpty(t, a.Log)
		b, err := os.ReadFile(a.Log)
		require.NoError(t, err)
		require.Equal(t, 1, strings.Count(string(b), "printed to stdout"), "its own output only, once: %q", b)
		if procs.Visible {
			require.Contains(t, string(b), "written to descriptor 1")
		}
		require.NotContains(t, string(b), "gaffer-end", "the end marker is not part of the log")
	}
	require.Equal(t, n, noisy)
}

// PoolSleeper notes its worker's pid and sleeps until killed.
var PoolSleeper = gaffer.MustRegister("pool.sleeper", func(ctx context.Context, jc *gaffer.JobContext, _ int) (int, error) {
	mark("psleep %d %d %d", jc.ID(), jc.Attempt(), os.Getpid())
	time.Sleep(time.Minute)
	return 0, nil
})

// Cancelling Run's context kills the running jobs' workers, and what they
// started, at once.
func TestPoolKillEndsTheWorker(t *testing.T) {
	if testing.Short() || !procs.Visible {
		t.Skip("starts processes and looks them up by pid")
	}
	marks := filepath.Join(t.TempDir(), "marks")
	t.Setenv(envMarks, marks)
	t.Setenv(envPhase, "1")
	l := newPoolLeader(t, 2, nil)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		for len(readPoolMarks(t, marks)) == 0 {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
	}()
	_, err := gaffer.Run(ctx, l, PoolSleeper.New(0))
	require.ErrorIs(t, err, context.Canceled)
	ms := readPoolMarks(t, marks)
	require.Len(t, ms, 1)
	requireGone(t, []int{ms[0].pid})
}

// requireGone waits a little for the processes to be gone.
func requireGone(t *testing.T, pids []int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var alive []int
		for _, p := range pids {
			if procs.Alive(p) {
				alive = append(alive, p)
			}
		}
		if len(alive) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, p := range alive {
				procs.Kill(p)
			}
			t.Fatalf("worker processes survived: %v", alive)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const (
	envPoolStore   = "GAFFER_TEST_POOL_STORE"
	envPoolSleep   = "GAFFER_TEST_POOL_SLEEP_MS"
	envPoolBackoff = "GAFFER_TEST_POOL_BACKOFF"
	poolDeathN     = 8
)

// poolLeaderMain runs, in a child process that a test kills, a leader
// whose jobs run in a pool: PoolRoot with poolDeathN leaves and a flaky
// job that fails its first attempt.
func poolLeaderMain(store string) int {
	sleep, _ := strconv.Atoi(os.Getenv(envPoolSleep))
	backoff, _ := time.ParseDuration(os.Getenv(envPoolBackoff))
	bs, err := local.New(local.Options{Mode: local.Workers, Cores: 4})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer bs.Shutdown(context.Background())
	l, err := gaffer.NewLeader(gaffer.Config{Store: store, BatchSystem: bs, RetryBackoff: backoff,
		DefaultRequirements: gaffer.Requirements{Cores: 0.1, Memory: 1 << 20, Disk: 1 << 20}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer l.Close()
	sum, err := gaffer.Run(context.Background(), l, PoolRoot.New(poolRootIn{N: poolDeathN, SleepMS: sleep, Hold: -1, Flaky: true}))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("sum", sum)
	return 0
}

// A leader killed with SIGKILL takes its pool workers with it, whether
// they are idle (the leader waits out a retry's backoff) or running jobs;
// a new leader on the same store finishes the workflow with the right
// value.
func TestPoolWorkersDieWithTheirLeader(t *testing.T) {
	if testing.Short() || !procs.Visible {
		t.Skip("starts processes and looks them up by pid")
	}
	for _, c := range []struct {
		name    string
		sleepMS int
		backoff string
		ready   func(leaves int, flakyFailed bool) bool
	}{
		// Every leaf done and the flaky job failed once: the workers
		// wait idle while the leader waits five seconds to retry it.
		{"idle", 10, "5s", func(leaves int, f bool) bool { return leaves == poolDeathN && f }},
		// Leaves of two seconds, four at once: some run.
		{"running", 2000, "300ms", func(leaves int, _ bool) bool { return leaves >= 2 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			store, marks := filepath.Join(dir, "wf.db"), filepath.Join(dir, "marks")
			start := func(phase, backoff string) (*exec.Cmd, *strings.Builder) {
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), envPoolStore+"="+store, envMarks+"="+marks, envPhase+"="+phase,
					envPoolSleep+"="+strconv.Itoa(c.sleepMS), envPoolBackoff+"="+backoff)
				var out strings.Builder
				cmd.Stdout, cmd.Stderr = &out, &out
				require.NoError(t, cmd.Start())
				return cmd, &out
			}
			cmd, out := start("1", c.backoff)
			deadline := time.Now().Add(60 * time.Second)
			var pids []int
			for {
				leaves, flaky := 0, false
				pids = pids[:0]
				for _, m := range readPoolMarks(t, marks) {
					leaves += b2i(m.what == "pleaf")
					if !slices.Contains(pids, m.pid) {
						pids = append(pids, m.pid)
					}
				}
				for _, m := range readMarks(t, marks) {
					flaky = flaky || m.what == "flaky"
				}
				if c.ready(leaves, flaky) {
					break
				}
				require.True(t, time.Now().Before(deadline), "the first leader made no progress: %s", out)
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(200 * time.Millisecond) // the last replies reach the leader
			for _, p := range pids {
				require.True(t, procs.Alive(p), "worker %d is alive (idle or running) before the kill", p)
			}
			require.NoError(t, cmd.Process.Kill())
			_ = cmd.Wait()
			requireGone(t, pids)

			cmd, out = start("2", "10ms")
			require.NoError(t, cmd.Wait(), "second leader: %s", out)
			require.Contains(t, out.String(), fmt.Sprintf("sum %d", poolDeathN*(poolDeathN-1)/2))
		})
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
