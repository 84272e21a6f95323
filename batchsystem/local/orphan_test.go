//go:build linux || darwin

package local_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/batchsystem/local"
)

// A system that issues a job in the folder where another system's worker
// still runs (what a leader restarted after a hard kill does, where
// workers do not die with their leader) kills that worker and its process
// group before it starts its own, and only then.
func TestOrphanInJobFolderIsKilledBeforeTheJobRunsAgain(t *testing.T) {
	dir := t.TempDir()
	spec := func(script string) batchsystem.JobSpec {
		return batchsystem.JobSpec{JobID: "j1", Name: "j1", Kind: "k", Attempt: 1, Dir: dir,
			Requirements: batchsystem.Requirements{Cores: 0.1, Memory: 1 << 20, Disk: 1 << 20},
			Command:      []string{"/bin/sh", "-c", script}}
	}
	newSys := func() *local.System {
		s, err := local.New(local.Options{Mode: local.Subprocess, Cores: 1, Memory: 1 << 30, Disk: 1 << 30})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
		return s
	}
	// The first "leader": a worker that starts a child and sleeps.
	first := newSys()
	child := filepath.Join(dir, "child.pid")
	_, err := first.Issue(t.Context(), spec(`sleep 3600 & echo $! > `+child+`; wait`))
	require.NoError(t, err)
	var pids []int
	require.Eventually(t, func() bool {
		pids = pids[:0]
		for _, f := range []string{filepath.Join(dir, local.PIDFile), child} {
			b, err := os.ReadFile(f)
			if err != nil {
				return false
			}
			pid, err := strconv.Atoi(strings.Fields(string(b))[0])
			if err != nil {
				return false
			}
			pids = append(pids, pid)
		}
		return true
	}, 30*time.Second, 20*time.Millisecond, "the worker and its child started")
	for _, pid := range pids {
		require.NoError(t, syscall.Kill(pid, 0), "process %d runs", pid)
	}

	// An unrelated folder's job leaves the worker alone.
	second := newSys()
	other := spec("true")
	other.Dir = t.TempDir()
	_, err = second.Issue(t.Context(), other)
	require.NoError(t, err)
	f, err := second.WaitFinished(t.Context(), 30*time.Second)
	require.NoError(t, err)
	require.NotNil(t, f)
	require.NoError(t, syscall.Kill(pids[0], 0), "a job in another folder does not touch the worker")

	// The same job in the same folder: the orphan dies first.
	_, err = second.Issue(t.Context(), spec("true"))
	require.NoError(t, err)
	f, err = second.WaitFinished(t.Context(), 30*time.Second)
	require.NoError(t, err)
	require.NotNil(t, f)
	require.Equal(t, 0, f.ExitCode)
	// The first system reaps its worker and sees it killed by a signal.
	old, err := first.WaitFinished(t.Context(), 30*time.Second)
	require.NoError(t, err)
	require.NotNil(t, old)
	require.Equal(t, 128+int(syscall.SIGKILL), old.ExitCode, old.Message)
	require.Eventually(t, func() bool { return syscall.Kill(pids[1], 0) != nil || zombie(pids[1]) },
		10*time.Second, 20*time.Millisecond, "the orphan's child died with it")
}

// zombie reports whether pid has exited and waits for its parent to reap
// it (on Linux; elsewhere it reports false).
func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && strings.HasPrefix(strings.TrimSpace(string(b[i+1:])), "Z")
}
