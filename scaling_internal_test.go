package gaffer

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/scaler"
)

// Only attempts that succeeded teach the scaler how long a kind of job
// runs; a failed or lost attempt's time would drag the estimate down.
func TestWorkloadLearnsOnlyFromSuccesses(t *testing.T) {
	w := &workload{issued: map[batchsystem.ID]scaler.Job{}}
	w.add(1, "k", Requirements{Cores: 1})
	w.add(2, "k", Requirements{Cores: 1})
	w.add(3, "k", Requirements{Cores: 1})
	issued, _ := w.Issued(t.Context())
	require.Len(t, issued, 3)

	w.done(1, 5*time.Second, false) // failed
	w.done(2, 7*time.Second, true)  // succeeded
	w.done(9, time.Second, true)    // not issued here: ignored
	done, _ := w.Completed(t.Context())
	require.Len(t, done, 1)
	require.Equal(t, 7*time.Second, done[0].WallTime)
	again, _ := w.Completed(t.Context())
	require.Empty(t, again, "each completion is returned once")
	issued, _ = w.Issued(t.Context())
	require.Len(t, issued, 1, "finished jobs are no longer issued")
}
