package gaffer_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem/local"
	"github.com/gafferhq/gaffer/jobstore"
)

const (
	envLeaderStore = "GAFFER_TEST_LEADER_STORE"
	envMarks       = "GAFFER_TEST_MARKS"
	envPhase       = "GAFFER_TEST_PHASE"
	crashLeaves    = 80
)

func mark(format string, args ...any) {
	f, err := os.OpenFile(os.Getenv(envMarks), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, os.Getenv(envPhase)+" "+format+"\n", args...)
}

var small = []gaffer.JobOption{gaffer.Cores(0.1), gaffer.Memory("16Mi"), gaffer.Disk("1Mi")}

// SlowLeaf sleeps a little, notes that it ran, and returns its input.
var SlowLeaf = gaffer.MustRegister("crash.leaf", func(ctx context.Context, jc *gaffer.JobContext, i int) (int, error) {
	time.Sleep(30 * time.Millisecond)
	mark("leaf %d", jc.ID())
	return i, nil
}, small...)

// CrashFlaky fails its first attempt, noting each attempt.
var CrashFlaky = gaffer.MustRegister("crash.flaky", func(ctx context.Context, jc *gaffer.JobContext, _ int) (int, error) {
	mark("flaky %d %d", jc.ID(), jc.Attempt())
	if jc.Attempt() == 1 {
		return 0, errors.New("first attempt fails")
	}
	return 0, nil
}, small...)

var CrashRoot = gaffer.MustRegister("crash.root", func(ctx context.Context, jc *gaffer.JobContext, n int) (int, error) {
	parts := make([]gaffer.Input[int], 0, n+1)
	flaky := CrashFlaky.New(0)
	jc.AddChild(flaky)
	parts = append(parts, flaky.Result())
	for i := range n {
		leaf := SlowLeaf.New(i)
		jc.AddChild(leaf)
		parts = append(parts, leaf.Result())
	}
	sum := Add.NewFrom(gaffer.Collect(parts...), small...)
	jc.AddFollowOn(sum)
	return gaffer.Forward(jc, sum.Result())
}, small...)

// leaderMain runs the crash workflow with subprocess workers; the test
// runs it in a child process so that it can kill it.
func leaderMain(store string) int {
	bs, err := local.New(local.Options{Mode: local.Subprocess, Cores: 2})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer bs.Shutdown(context.Background())
	l, err := gaffer.NewLeader(gaffer.Config{Store: store, BatchSystem: bs, RetryBackoff: 300 * time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer l.Close()
	sum, err := gaffer.Run(context.Background(), l, CrashRoot.New(crashLeaves))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("sum", sum)
	return 0
}

func startLeader(t *testing.T, store, marks, phase string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envLeaderStore+"="+store, envMarks+"="+marks, envPhase+"="+phase)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	return cmd, &out
}

type markLine struct {
	phase, what string
	id          uint64
	attempt     int
}

func readMarks(t *testing.T, path string) []markLine {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	defer f.Close()
	var out []markLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 3 {
			continue // a line torn by the kill
		}
		id, _ := strconv.ParseUint(fs[2], 10, 64)
		m := markLine{phase: fs[0], what: fs[1], id: id}
		if len(fs) > 3 {
			m.attempt, _ = strconv.Atoi(fs[3])
		}
		out = append(out, m)
	}
	return out
}

// A leader killed with SIGKILL in the middle of a workflow, started again
// on the same store, finishes it: jobs whose results were recorded (in
// the store, or in their folder by a worker) do not run again, no result
// is lost, and retry counts are kept.
func TestResumeAfterLeaderIsKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := t.TempDir()
	store, marks := filepath.Join(dir, "wf.db"), filepath.Join(dir, "marks")

	cmd, out := startLeader(t, store, marks, "1")
	deadline := time.Now().Add(60 * time.Second)
	for {
		leaves, flakyFailed := 0, false
		for _, m := range readMarks(t, marks) {
			if m.what == "leaf" {
				leaves++
			}
			if m.what == "flaky" {
				flakyFailed = true
			}
		}
		if leaves >= crashLeaves/2 && flakyFailed {
			break
		}
		require.True(t, time.Now().Before(deadline), "the first leader made no progress: %s", out)
		time.Sleep(20 * time.Millisecond)
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	time.Sleep(100 * time.Millisecond) // let workers die with their leader

	// What the dead leader had recorded.
	done := map[uint64]bool{}
	var flakyTries int
	s, err := jobstore.OpenBolt(store, &jobstore.BoltOptions{ReadOnly: true})
	require.NoError(t, err)
	first := readMarks(t, marks)
	require.NoError(t, s.View(t.Context(), func(tx jobstore.ReadTx) error {
		for _, m := range first {
			if _, err := tx.Result(jobstore.JobID(m.id)); err == nil {
				done[m.id] = true
			}
			if m.what == "flaky" {
				if j, err := tx.Job(jobstore.JobID(m.id)); err == nil {
					flakyTries = j.Tries
				}
			}
		}
		return nil
	}))
	require.NoError(t, s.Close())
	// Results that workers wrote after the leader's last commit count as
	// done too: the next leader must take them, not rerun the jobs.
	inStore := len(done)
	results, _ := filepath.Glob(store + ".work/jobs/*/result.*.json")
	for _, r := range results {
		b, err := os.ReadFile(r)
		require.NoError(t, err)
		if !bytes.Contains(b, []byte(`"ok":true`)) {
			continue // a failed attempt: it runs again, as a retry
		}
		id, err := strconv.ParseUint(filepath.Base(filepath.Dir(r)), 10, 64)
		require.NoError(t, err)
		done[id] = true
	}
	t.Logf("before the kill: %d results committed, %d more in job folders", inStore, len(done)-inStore)
	require.NotEmpty(t, done, "some jobs finished before the kill")
	require.Less(t, len(done), crashLeaves+1, "the kill came before the end")

	cmd, out = startLeader(t, store, marks, "2")
	require.NoError(t, cmd.Wait(), "second leader: %s", out)
	want := crashLeaves * (crashLeaves - 1) / 2
	require.Contains(t, out.String(), fmt.Sprintf("sum %d", want), "no result was lost")

	leavesRun := map[uint64]bool{}
	for _, m := range readMarks(t, marks) {
		if m.what == "leaf" {
			leavesRun[m.id] = true
		}
		if m.phase != "2" {
			continue
		}
		require.False(t, done[m.id], "job %d had finished before the kill but ran again", m.id)
		if m.what == "flaky" {
			require.Greater(t, m.attempt, flakyTries, "the retry count survives the restart")
		}
	}
	require.Len(t, leavesRun, crashLeaves, "every leaf ran")
}

// Cancelling Run's context stops the workflow; a new leader on the same
// store finishes it.
func TestCancelLeavesAResumableStore(t *testing.T) {
	l, store := newLeader(t, testOpts{})
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		for l.Stats().Successes < 10 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	_, err := gaffer.Run(ctx, l, Gate.New(200))
	require.ErrorIs(t, err, context.Canceled)
	require.NoError(t, l.Close())

	l2, _ := newLeader(t, testOpts{store: store})
	got, err := gaffer.Run(t.Context(), l2, Gate.New(200))
	require.NoError(t, err)
	require.Equal(t, 200*199/2, got)
	require.Less(t, l2.Stats().Successes, 200+2, "jobs done before the cancel did not run again")
}

// Gate fans out to n slow-ish leaves.
var Gate = gaffer.MustRegister("cancel.root", func(ctx context.Context, jc *gaffer.JobContext, n int) (int, error) {
	parts := make([]gaffer.Input[int], n)
	for i := range n {
		leaf := Sleepy.New(i)
		jc.AddChild(leaf)
		parts[i] = leaf.Result()
	}
	sum := Add.NewFrom(gaffer.Collect(parts...))
	jc.AddFollowOn(sum)
	return gaffer.Forward(jc, sum.Result())
})

var Sleepy = gaffer.MustRegister("cancel.leaf", func(ctx context.Context, jc *gaffer.JobContext, i int) (int, error) {
	select {
	case <-time.After(2 * time.Millisecond):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return i, nil
})
