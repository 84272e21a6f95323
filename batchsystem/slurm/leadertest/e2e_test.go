package leadertest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/batchsystem/slurm"
	"github.com/gafferhq/gaffer/gaffertest"
)

const envE2EPrefix = "GAFFER_LT_E2E_PREFIX"

// The end-to-end suite on the real cluster: its killed leader's Slurm
// jobs run on and the next leader adopts them.
func TestEndToEnd(t *testing.T) {
	needCluster(t)
	// The suite's killed leader is this test binary started again: it
	// must name its Slurm jobs as the next leader does, or the next
	// leader cannot adopt them. The prefix goes to it by environment.
	prefix := os.Getenv(envE2EPrefix)
	if prefix == "" {
		prefix = uniquePrefix("e2e")
		t.Setenv(envE2EPrefix, prefix)
	}
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
