package batchsystemtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/internal/procs"
)

// goneWithin bounds the wait for killed processes to disappear: a signal
// is delivered, and an orphaned child reaped, a moment after kill(2)
// returns. A system that leaves processes behind leaves them for an hour.
const goneWithin = 5 * time.Second

// treeJob is a long job that leaves evidence of its processes. As a
// process it is a shell that starts a child and writes both pids to a
// file, so that the suite can tell whether killing the job killed what
// the worker started too. In-process, its Run notes when it starts and
// when it returns.
type treeJob struct {
	spec     batchsystem.JobSpec
	pidFile  string
	remote   bool
	pids     []int
	started  chan struct{}
	returned chan struct{}
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func (s suite) tree(t *testing.T, name string) *treeJob {
	dir := s.c.Dir(t)
	tr := &treeJob{
		pidFile: filepath.Join(dir, name+".pids"),
		remote:  s.c.RemoteWorkers,
		started: make(chan struct{}), returned: make(chan struct{}),
	}
	tr.spec = s.spec(name, time.Hour, 0)
	q := shellQuote(tr.pidFile)
	// $$ is the shell, $! the sleep it started; the rename makes the file
	// whole when it appears.
	tr.spec.Command = []string{"/bin/sh", "-c", fmt.Sprintf(`sleep 3600 & echo "$$ $!" > %s.tmp && mv %s.tmp %s; wait`, q, q, q)}
	var once sync.Once
	tr.spec.Run = func(ctx context.Context) error {
		once.Do(func() { close(tr.started) })
		<-ctx.Done()
		close(tr.returned)
		return ctx.Err()
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		// Leave no process of a failed check behind on the machine.
		for _, pid := range tr.pids {
			if procs.Alive(pid) {
				procs.Kill(pid)
			}
		}
	})
	return tr
}

// waitStarted waits for evidence that the running job's worker started,
// and reports whether there is any: a system that runs jobs in-process
// may call Run late (a simulator calls it at the job's virtual end).
func (tr *treeJob) waitStarted(t *testing.T, b batchsystem.BatchSystem, within time.Duration) bool {
	t.Helper()
	if ip, ok := b.(batchsystem.InProcess); ok && ip.InProcess() {
		select {
		case <-tr.started:
			return true
		case <-time.After(2 * time.Second):
			t.Log("Run was not called while the job ran; whether it stops is not checked")
			return false
		}
	}
	deadline := time.Now().Add(within)
	for {
		b, err := os.ReadFile(tr.pidFile)
		if err == nil {
			var shell, child int
			_, err = fmt.Sscanf(string(b), "%d %d", &shell, &child)
			require.NoError(t, err, "pid file %s: %q", tr.pidFile, b)
			tr.pids = []int{shell, child}
			return true
		}
		require.True(t, time.Now().Before(deadline), "the job runs, but its command never wrote %s", tr.pidFile)
		time.Sleep(20 * time.Millisecond)
	}
}

// requireGone fails the test unless the job's worker, and what it
// started, stopped once what (Kill or Shutdown) returned.
func (tr *treeJob) requireGone(t *testing.T, what string) {
	t.Helper()
	if tr.pids == nil {
		select {
		case <-tr.returned:
		case <-time.After(goneWithin):
			t.Fatalf("%s returned, but the job's Run had not returned %v later", what, goneWithin)
		}
		return
	}
	if tr.remote || !procs.Visible {
		t.Logf("workers' processes cannot be seen from here; whether %s left any is not checked", what)
		return
	}
	deadline := time.Now().Add(goneWithin)
	for {
		var left []string
		for i, pid := range tr.pids {
			if procs.Alive(pid) {
				left = append(left, fmt.Sprintf("%s %d", [...]string{"the worker", "its child"}[i], pid))
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s returned, but %v later processes of the job still run: %s", what, goneWithin, strings.Join(left, ", "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// shutdownProcesses: Shutdown kills the running jobs' processes, and
// what they started, before it returns.
func (s suite) shutdownProcesses(t *testing.T) {
	b := s.c.New(t)
	t.Cleanup(func() { _ = b.Shutdown(context.Background()) })
	tr := s.tree(t, "long")
	id, err := b.Issue(t.Context(), tr.spec)
	require.NoError(t, err)
	s.waitRunning(t, b, id)
	started := tr.waitStarted(t, b, s.c.Timeout)
	require.NoError(t, b.Shutdown(t.Context()))
	if started {
		tr.requireGone(t, "Shutdown")
	}
}
