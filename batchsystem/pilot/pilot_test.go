//go:build unix

package pilot_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/batchsystem/pilot"
)

// serve runs a real pilot of the queue at root in this process, with
// jobs as real /bin/sh processes.
func serve(t *testing.T, q pilot.Queue, c pilot.Config) (stop func(), done <-chan error) {
	t.Helper()
	require.NoError(t, q.Init())
	require.NoError(t, q.WritePilot(c))
	ctx, cancel := context.WithCancel(t.Context())
	ch := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		ch <- pilot.Serve(ctx, q.Root, c.Name, io.Discard)
		close(finished)
	}()
	t.Cleanup(func() { cancel(); <-finished })
	return cancel, ch
}

func ticket(name, script string) pilot.Ticket {
	return pilot.Ticket{Name: name, Owner: "o1", Shape: "s1", JobID: name, Command: []string{"/bin/sh", "-c", script}}
}

func waitEnd(t *testing.T, q pilot.Queue, name string) pilot.End {
	t.Helper()
	var e pilot.End
	require.Eventually(t, func() bool {
		var err error
		e, err = q.ReadEnd(name)
		return err == nil
	}, 20*time.Second, 10*time.Millisecond, "no End for %s", name)
	return e
}

func config(name string) pilot.Config {
	return pilot.Config{Name: name, Owner: "o1", Shape: "s1", Slots: 4, Idle: time.Minute, Poll: 10 * time.Millisecond, KillGrace: 300 * time.Millisecond}
}

// Each job of a pilot gets its own exit code, environment, folder, log
// and times.
func TestJobsKeepTheirOwnRecords(t *testing.T) {
	q := pilot.Queue{Root: t.TempDir()}
	serve(t, q, config("p1"))
	dir := t.TempDir()
	a := ticket("a", `echo "a in $(pwd) sees $V"; sleep 0.5; exit 3`)
	a.Env, a.Dir, a.LogPath = map[string]string{"V": "va"}, dir, filepath.Join(dir, "a.log")
	b := ticket("b", `echo "b sees $V"`)
	b.Env, b.LogPath = map[string]string{"V": "vb"}, filepath.Join(dir, "b.log")
	require.NoError(t, q.Put(a))
	require.NoError(t, q.Put(b))
	ea, eb := waitEnd(t, q, "a"), waitEnd(t, q, "b")
	require.Equal(t, 3, ea.Exit)
	require.Equal(t, pilot.ReasonExit, ea.Reason)
	require.Equal(t, 0, eb.Exit)
	require.Equal(t, "p1", ea.Pilot)
	require.NotEmpty(t, ea.Node)
	require.GreaterOrEqual(t, ea.End.Sub(ea.Start), 500*time.Millisecond, "a's own wall time")
	require.Less(t, eb.End.Sub(eb.Start), 500*time.Millisecond, "b's own wall time, not the group's")
	la, err := os.ReadFile(a.LogPath)
	require.NoError(t, err)
	require.Equal(t, "a in "+dir+" sees va\n", string(la))
	lb, err := os.ReadFile(b.LogPath)
	require.NoError(t, err)
	require.Equal(t, "b sees vb\n", string(lb))
	claimed, err := q.Claimed("p1")
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"a", "b"}, claimed, "the pilot claimed both")
}

// A kill flag stops its job only; a job past its Walltime is stopped
// with SIGTERM, and one that ignores SIGTERM gets SIGKILL after the grace.
func TestKillFlagAndWalltime(t *testing.T) {
	q := pilot.Queue{Root: t.TempDir()}
	serve(t, q, config("p1"))
	require.NoError(t, q.Put(ticket("victim", "sleep 60")))
	require.NoError(t, q.Put(ticket("bystander", "sleep 1; exit 4")))
	slow := ticket("slow", `trap "" TERM; sleep 60`)
	slow.Walltime = 200 * time.Millisecond
	require.NoError(t, q.Put(slow))
	require.Eventually(t, func() bool { _, err := q.ReadStart("victim"); return err == nil }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, q.Kill("victim"))
	v := waitEnd(t, q, "victim")
	require.Equal(t, pilot.ReasonKilled, v.Reason)
	require.Equal(t, 15, v.Signal, "SIGTERM first")
	by := waitEnd(t, q, "bystander")
	require.Equal(t, pilot.ReasonExit, by.Reason, "the rest of the group is untouched")
	require.Equal(t, 4, by.Exit)
	s := waitEnd(t, q, "slow")
	require.Equal(t, pilot.ReasonTimeout, s.Reason)
	require.Equal(t, 9, s.Signal, "SIGKILL after the grace, for a job that ignores SIGTERM")
}

// A withdrawn ticket is never run; a pilot with nothing to do exits after
// its idle time; a pilot that is stopped writes no End for its jobs.
func TestWithdrawIdleAndStop(t *testing.T) {
	q := pilot.Queue{Root: t.TempDir()}
	require.NoError(t, q.Init())
	marker := filepath.Join(t.TempDir(), "ran")
	require.NoError(t, q.Put(ticket("w", "touch "+marker)))
	ok, err := q.Withdraw("o1", "s1", "w")
	require.NoError(t, err)
	require.True(t, ok)
	c := config("idle")
	c.Idle = 300 * time.Millisecond
	_, done := serve(t, q, c)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("an idle pilot did not exit")
	}
	require.NoFileExists(t, marker, "a withdrawn ticket never runs")
	where, _, err := q.Where("o1", "s1", "w")
	require.NoError(t, err)
	require.Empty(t, where)

	stop, done := serve(t, q, config("stopped"))
	require.NoError(t, q.Put(ticket("cut", "sleep 60")))
	require.Eventually(t, func() bool { _, err := q.ReadStart("cut"); return err == nil }, 10*time.Second, 10*time.Millisecond)
	where, p, err := q.Where("o1", "s1", "cut")
	require.NoError(t, err)
	require.Equal(t, "claimed", where)
	require.Equal(t, "stopped", p)
	stop()
	require.NoError(t, <-done)
	_, err = q.ReadEnd("cut")
	require.ErrorIs(t, err, os.ErrNotExist, "a stopped pilot's jobs did not end on their own: no End")
}
