package gaffer_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem/local"
	"github.com/gafferhq/gaffer/jobstore"
)

// Measure returns a size, as a job that measured an input file would.
var Measure = gaffer.MustRegister("test.measure", func(ctx context.Context, jc *gaffer.JobContext, mib int64) (int64, error) {
	return mib << 20, nil
})

// Sized returns its name; its memory comes from Measure.
var Sized = gaffer.MustRegister("test.sized", func(ctx context.Context, jc *gaffer.JobContext, name string) (string, error) {
	return name, nil
})

// measured builds root ─c→ measure ─c→ sized, sized's memory promised by
// measure; root returns sized's result.
var measured = gaffer.MustRegister("test.measured", func(ctx context.Context, jc *gaffer.JobContext, mib int64) (string, error) {
	m := Measure.New(mib)
	s := Sized.New("sized", gaffer.MemoryFrom(m.Result()), gaffer.Name("sized"))
	m.AddChild(s)
	jc.AddChild(m)
	return gaffer.Forward(jc, s.Result())
})

// Toil's promised-requirements case: a job whose memory comes from an
// upstream result runs with exactly that memory, in-process and through
// worker processes, as its attempt record shows.
func TestPromisedMemoryIsWhatTheJobRunsWith(t *testing.T) {
	for _, mode := range []local.Mode{local.InProcess, local.Workers, local.Subprocess} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			l, store := newLeader(t, testOpts{mode: mode})
			got, err := gaffer.Run(t.Context(), l, measured.New(37))
			require.NoError(t, err)
			require.Equal(t, "sized", got)
			require.NoError(t, l.Close())
			var sized []jobstore.Attempt
			for _, a := range attempts(t, store, 0) {
				if a.Name == "sized" {
					sized = append(sized, a)
				}
			}
			require.Len(t, sized, 1)
			require.EqualValues(t, 37<<20, sized[0].Requirements.Memory, "exactly the promised memory")
			require.True(t, sized[0].OK)
		})
	}
}

// A requirement promised by a job that may not have run when the job is
// issued is refused when the graph is submitted, naming both jobs.
func TestRequirementPromiseOfAJobThatRunsLaterIsRefused(t *testing.T) {
	l, _ := newLeader(t, testOpts{})
	root := Measure.New(1, gaffer.Name("root"))
	m := Measure.New(2, gaffer.Name("measure"))
	s := Sized.New("x", gaffer.MemoryFrom(m.Result()), gaffer.Name("sized"))
	root.AddChild(m)
	root.AddChild(s) // a sibling: it may run first
	_, err := gaffer.Run(t.Context(), l, root)
	var ge *gaffer.GraphError
	require.ErrorAs(t, err, &ge)
	require.Contains(t, ge.Error(), "requirements promise the result of a job that may not have run")
	require.Contains(t, ge.Error(), "sized (new #")
	require.Contains(t, ge.Error(), "measure (new #")
}

// Hungry allocates and touches mib MiB.
var Hungry = gaffer.MustRegister("test.hungry", func(ctx context.Context, jc *gaffer.JobContext, mib int) (int, error) {
	b := make([]byte, mib<<20)
	for i := range b {
		if i%4096 == 0 {
			b[i] = 1
		}
	}
	runtime.KeepAlive(b)
	return len(b) >> 20, nil
}, gaffer.MoreMemoryOnRetry(3, "1Gi"))

// A worker that runs out of its memory request, enforced by the local
// batch system, is retried with more, and succeeds.
func TestOutOfMemoryIsRetriedWithMore(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the local batch system enforces memory on Linux only")
	}
	if raceEnabled() {
		t.Skip("a worker built with the race detector needs far more than its memory request for the detector itself")
	}
	bs, err := local.New(local.Options{Mode: local.Subprocess, Cores: 2, Memory: 4 << 30, EnforceMemory: true})
	require.NoError(t, err)
	t.Cleanup(func() { bs.Shutdown(context.Background()) })
	store := filepath.Join(t.TempDir(), "oom.db")
	l, err := gaffer.NewLeader(gaffer.Config{Store: store, BatchSystem: bs, RetryBackoff: -1})
	require.NoError(t, err)
	got, err := gaffer.Run(t.Context(), l, Hungry.New(200, gaffer.Memory("128Mi"), gaffer.Cores(0.5), gaffer.Name("hungry")))
	require.NoError(t, err)
	require.Equal(t, 200, got)
	require.NoError(t, l.Close())
	recs := attempts(t, store, 0)
	require.Len(t, recs, 2)
	require.False(t, recs[0].OK)
	require.Equal(t, "memlimit", recs[0].Reason)
	require.EqualValues(t, 128<<20, recs[0].Requirements.Memory)
	require.Contains(t, recs[0].Error, "ran out of memory with 128 MiB; the next try asks for 384 MiB")
	require.True(t, recs[1].OK)
	require.EqualValues(t, 384<<20, recs[1].Requirements.Memory)
}
