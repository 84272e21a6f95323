//go:build unix

package gaffer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/batchsystem/pilot"
)

// reuseEcho prints a line and returns its worker's pid; -1 makes it end
// its process (os.Exit), as a crashing job would.
var reuseEcho = MustRegister("reuse.echo", func(ctx context.Context, jc *JobContext, i int) (int, error) {
	if i < 0 {
		os.Exit(7)
	}
	fmt.Printf("hello %d\n", i)
	return os.Getpid(), nil
})

// A pilot runs the jobs of its own program in reused folder workers:
// each job gets its own log and result file and its own exit, and a job
// that ends its process takes down only its worker.
func TestPilotReusesFolderWorkers(t *testing.T) {
	work := t.TempDir()
	tr := &dirTransport{log: slog.New(slog.DiscardHandler), workDir: work, command: []string{os.Args[0]}}
	q := pilot.Queue{Root: filepath.Join(work, "pilot")}
	require.NoError(t, q.Init())
	c := pilot.Config{Name: "p1", Owner: "o", Shape: "s", Slots: 1, Idle: time.Minute, Poll: 10 * time.Millisecond, KillGrace: time.Second}
	require.NoError(t, q.WritePilot(c))
	inputs := []int{1, 2, 3, -1, 4, 5}
	for k, in := range inputs {
		id := JobID(k + 1)
		b, _ := json.Marshal(in)
		env := &envelope{Job: id, Kind: reuseEcho.Name(), Attempt: 1, Epoch: 1, Seq: uint64(k + 1), WorkDir: work, Input: b}
		var spec batchsystem.JobSpec
		require.NoError(t, tr.prepare(env, &spec))
		require.NoError(t, q.Put(pilot.Ticket{Name: strconv.Itoa(k), Owner: "o", Shape: "s", JobID: id.String(),
			Command: spec.Command, Dir: spec.Dir, LogPath: spec.LogPath}))
	}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- pilot.Serve(ctx, q.Root, "p1", io.Discard) }()
	defer func() { cancel(); <-served }()

	pids := map[int]int{}
	for k, in := range inputs {
		var e pilot.End
		require.Eventually(t, func() bool {
			var err error
			e, err = q.ReadEnd(strconv.Itoa(k))
			return err == nil
		}, 30*time.Second, 10*time.Millisecond, "job %d ended", k)
		id := JobID(k + 1)
		dir := jobDir(work, id)
		if in < 0 {
			require.Equal(t, 7, e.Exit, "the job's own exit, its worker's")
			continue
		}
		if e.Exit != 0 {
			lb, _ := os.ReadFile(filepath.Join(dir, logFile(1, uint64(k+1))))
			t.Logf("log: %s; end: %+v", lb, e)
		}
		require.Equal(t, 0, e.Exit)
		out, err := readOutcome(filepath.Join(dir, resultFile(1, uint64(k+1))), id, 1, uint64(k+1))
		require.NoError(t, err)
		require.True(t, out.OK, out.Error)
		var pid int
		require.NoError(t, json.Unmarshal(out.Result, &pid))
		require.NotEqual(t, os.Getpid(), pid)
		pids[pid]++
		log, err := os.ReadFile(filepath.Join(dir, logFile(1, uint64(k+1))))
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("hello %d\n", in), string(log), "the job's output, and only its own, in its log")
	}
	require.Len(t, pids, 2, "one worker before the crash, one after: %v", pids)
}
