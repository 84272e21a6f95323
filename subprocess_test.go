package gaffer_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem/local"
)

// Crash kills its worker process without leaving a result.
var Crash = gaffer.MustRegister("sub.crash", func(ctx context.Context, jc *gaffer.JobContext, code int) (int, error) {
	fmt.Fprintln(os.Stderr, "worker going down hard")
	os.Exit(code)
	return 0, nil
})

// workerModes are the local batch system's modes that run jobs in worker
// processes: a pool, and one process per job.
var workerModes = []local.Mode{local.Workers, local.Subprocess}

func TestSubprocessWorkerThatDiesIsAFailureWithItsLog(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	for _, mode := range workerModes {
		t.Run(mode.String(), func(t *testing.T) {
			l, _ := newLeader(t, testOpts{mode: mode})
			_, err := l.Run(t.Context(), Crash.New(7, gaffer.Name("crasher")))
			var fe *gaffer.FailedJobsError
			require.ErrorAs(t, err, &fe)
			require.Len(t, fe.Jobs, 1)
			require.Equal(t, 2, fe.Jobs[0].Tries)
			if mode == local.Workers {
				require.Regexp(t, `^exit code 7 \(finished\): its pool worker \(pid \d+\) exited with code 7 during the job$`, fe.Jobs[0].Err)
			} else {
				require.Equal(t, "exit code 7 (finished)", fe.Jobs[0].Err)
			}
			require.Contains(t, fe.Jobs[0].LogTail, "worker going down hard")
		})
	}
}

// Write stores its input in the file store; Read, its child, reads it back.
var Write = gaffer.MustRegister("sub.write", func(ctx context.Context, jc *gaffer.JobContext, text string) (string, error) {
	files, err := jc.Files()
	if err != nil {
		return "", err
	}
	id, err := files.Write(ctx, strings.NewReader(text))
	if err != nil {
		return "", err
	}
	scratch, err := jc.ScratchDir()
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(scratch+"/tmp.txt", []byte("scratch"), 0o600); err != nil {
		return "", err
	}
	read := Read.New(id)
	jc.AddChild(read)
	return gaffer.Forward(jc, read.Result())
})

var Read = gaffer.MustRegister("sub.read", func(ctx context.Context, jc *gaffer.JobContext, id gaffer.FileID) (string, error) {
	files, err := jc.Files()
	if err != nil {
		return "", err
	}
	r, err := files.Open(id)
	if err != nil {
		return "", err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	return fmt.Sprintf("%s (read by %s, attempt %d)", b, jc.Kind(), jc.Attempt()), err
})

func TestSubprocessJobsShareTheFileStore(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	for _, mode := range workerModes {
		t.Run(mode.String(), func(t *testing.T) {
			l, store := newLeader(t, testOpts{mode: mode})
			got, err := gaffer.Run(t.Context(), l, Write.New("across processes"))
			require.NoError(t, err)
			require.Equal(t, "across processes (read by sub.read, attempt 1)", got)
			left, _ := os.ReadDir(store + ".work/scratch")
			require.Empty(t, left, "scratch directories are removed when their job ends")
			jobs, _ := os.ReadDir(store + ".work/jobs")
			require.Empty(t, jobs, "job folders are removed once their result is stored")
		})
	}
}

// Tree2 makes named jobs with successors inside a worker, so that the
// graph it sends back through its result file has every part: names,
// children, follow-ons, edges between new jobs, promises.
var Tree2 *gaffer.JobType[int, int]

func init() { Tree2 = gaffer.MustRegister("sub.tree", tree2) }

func tree2(ctx context.Context, jc *gaffer.JobContext, depth int) (int, error) {
	if depth == 0 {
		return 1, nil
	}
	a := Tree2.New(depth-1, gaffer.Name(fmt.Sprintf("left-%d", depth)))
	b := Tree2.New(depth-1, gaffer.Name(fmt.Sprintf("right-%d", depth)))
	sum := Add.NewFrom(gaffer.Collect[int](a.Result(), b.Result(), gaffer.Value(1)), gaffer.Name("sum"))
	jc.AddChild(a)
	a.AddFollowOn(b) // b waits for a's subtree: an edge between new jobs
	jc.AddFollowOn(sum)
	return gaffer.Forward(jc, sum.Result())
}

func TestSubprocessWorkersSendBackWholeGraphs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	for _, mode := range workerModes {
		t.Run(mode.String(), func(t *testing.T) {
			l, _ := newLeader(t, testOpts{mode: mode})
			got, err := gaffer.Run(t.Context(), l, Tree2.New(2))
			require.NoError(t, err)
			require.Equal(t, 7, got, "a depth-2 binary tree has 7 nodes")
		})
	}
}
