package leadertest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/batchsystem/slurm"
	"github.com/gafferhq/gaffer/gaffertest"
)

// The end-to-end suite on the real cluster: its killed leader's Slurm
// jobs run on and the next leader adopts them.
func TestEndToEnd(t *testing.T) {
	needCluster(t)
	prefix := uniquePrefix("e2e")
	gaffertest.RunBatchSystem(t, gaffertest.BatchSystemConfig{
		New: func(t *testing.T) batchsystem.BatchSystem {
			bs, err := slurm.New(slurm.Options{PollInterval: pollInterval, NamePrefix: prefix})
			require.NoError(t, err)
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				_ = bs.Shutdown(ctx)
			})
			return bs
		},
		Timeout: 3 * time.Minute,
	})
}
