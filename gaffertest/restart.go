package gaffertest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/jobstore"
)

// restartLeaves are the leaves of the restart workflow: short ones that
// end before the first leader is killed, long ones that run when it is.
func restartLeaves() []SleepInput {
	var in []SleepInput
	for i := range 4 {
		in = append(in, SleepInput{For: 200 * time.Millisecond, Value: 1 << i})
	}
	for i := 4; i < 8; i++ {
		in = append(in, SleepInput{For: 6 * time.Second, Value: 1 << i})
	}
	return in
}

// runPattern is a -test.run pattern that selects exactly the test named.
func runPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

// restart: a leader killed hard (SIGKILL) mid-workflow, and a new one
// started on the same store, finish the workflow with the right value.
// No job whose result was stored runs again, and no job runs twice at
// once: the killed leader's workers die with it, or (for a batch system
// that is an Adopter) run on and are adopted, not issued again.
func (e env) restart(t *testing.T) {
	if dir := os.Getenv(envChild); dir != "" {
		e.childLeader(t, dir)
		return
	}
	dir := e.dir(t)
	marks := filepath.Join(dir, "marks")
	in := restartLeaves()

	cmd := exec.Command(os.Args[0], "-test.run="+runPattern(t.Name()), "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), envChild+"="+dir, envMarks+"="+marks, envPhase+"=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("the first leader's output:\n%s", out.String())
		}
	}()

	// Kill it once two leaves ended and the long ones run.
	deadline := time.Now().Add(e.timeout)
	for {
		m := readMarks(t, marks)
		if count(m, "end") >= 2 && count(m, "start") >= len(in) {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("the first leader ended (%v) before it could be killed:%s", err, lines(m))
		case <-time.After(20 * time.Millisecond):
		}
		require.True(t, time.Now().Before(deadline), "the first leader made no progress:%s", lines(m))
	}
	require.NoError(t, cmd.Process.Kill())
	<-exited
	time.Sleep(200 * time.Millisecond) // a killed process's children get their signal
	before := readMarks(t, marks)
	stored := e.storedResults(t, dir, before)

	w := e.leader(t, dir, "2")
	_, adopts := w.bs.(batchsystem.Adopter)
	ctx, cancel := context.WithTimeout(t.Context(), e.timeout)
	defer cancel()
	got, err := gaffer.Run(ctx, w.l, Sleepers.New(in))
	require.NoError(t, err)
	want := 0
	for _, s := range in {
		want += s.Value
	}
	require.Equal(t, want, got, "no result was lost")
	w.requireNothingIssued(t)

	after := readMarks(t, marks)
	startedBefore := map[uint64]bool{}
	for _, m := range before {
		if m.what == "start" {
			startedBefore[m.job] = true
		}
	}
	for _, m := range after {
		if m.what == "start" && m.phase == "2" {
			require.False(t, stored[m.job], "job %d's result was stored before the kill, but it ran again:%s", m.job, lines(after))
			if adopts {
				require.False(t, startedBefore[m.job], "job %d ran under the first leader and was issued again instead of adopted:%s", m.job, lines(after))
			}
		}
	}
	if !adopts {
		var late []markLine
		for _, m := range after[len(before):] {
			if m.phase == "1" {
				late = append(late, m)
			}
		}
		require.Empty(t, late, "workers of the killed leader ran on beside the next leader (they must die with their leader, or the batch system must adopt them):%s", lines(late))
	}
	t.Logf("before the kill: %d marks, %d results stored; the second leader issued %d jobs", len(before), len(stored), w.l.Stats().Attempts)
}

// childLeader is the first leader, in the child process the test kills.
func (e env) childLeader(t *testing.T, dir string) {
	w := e.leader(t, dir, "1")
	_, err := gaffer.Run(context.Background(), w.l, Sleepers.New(restartLeaves()))
	t.Fatalf("the first leader was to be killed, but its run ended: %v", err)
}

// storedResults opens the store the killed leader left and tells which
// of the marked jobs have a stored result.
func (e env) storedResults(t *testing.T, dir string, marks []markLine) map[uint64]bool {
	t.Helper()
	var s jobstore.Store
	var err error
	if e.open != nil {
		s, err = e.openStore(t, dir)
	} else {
		s, err = jobstore.OpenBolt(filepath.Join(dir, "wf.db"), &jobstore.BoltOptions{ReadOnly: true})
	}
	require.NoError(t, err, "opening the killed leader's store")
	defer s.Close()
	stored := map[uint64]bool{}
	require.NoError(t, s.View(t.Context(), func(tx jobstore.ReadTx) error {
		for _, m := range marks {
			if _, err := tx.Result(jobstore.JobID(m.job)); err == nil {
				stored[m.job] = true
			}
		}
		return nil
	}))
	return stored
}
