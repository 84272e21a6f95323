package metrics_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem/local"
	"github.com/gafferhq/gaffer/examples/fanout/fanout"
	"github.com/gafferhq/gaffer/metrics"
)

// The views of a real run: every job once, by type, in the current
// block, and the workflow finished at the last commit.
func TestViewsOfARun(t *testing.T) {
	const n = 300
	bs, err := local.New(local.Options{})
	require.NoError(t, err)
	defer bs.Shutdown(context.Background())
	v := metrics.New(metrics.Options{})
	l, err := gaffer.NewLeader(gaffer.Config{Store: filepath.Join(t.TempDir(), "wf.db"), BatchSystem: bs, Metrics: v, NoSync: true})
	require.NoError(t, err)
	defer l.Close()
	sum, err := gaffer.Run(t.Context(), l, fanout.Root.New(n))
	require.NoError(t, err)
	require.Equal(t, n*(n-1)/2, sum)

	s := v.Snapshot()
	require.Equal(t, n+2, s.Total.Issued)
	require.Equal(t, n+2, s.Total.OK)
	require.Zero(t, s.Total.Failed)
	require.Equal(t, n, s.ByKind["fanout.leaf"].OK)
	require.Equal(t, 1, s.ByKind["fanout.sum"].OK)
	require.Equal(t, 1, s.ByKind["fanout.root"].OK)
	host, err := os.Hostname()
	require.NoError(t, err)
	require.Equal(t, n+2, s.ByNode[host].Ended, "the local batch system names this host")
	require.Equal(t, n+2, s.Total.WallN)
	require.True(t, s.Status.Finished && s.Status.Succeeded)
	require.Equal(t, l.Stats().Commits, s.Commits)
	var inBlocks int
	for _, b := range s.Blocks {
		inBlocks += b.Total.OK
	}
	require.Equal(t, n+2, inBlocks)
}
