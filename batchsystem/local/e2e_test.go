package local_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/batchsystem/local"
	"github.com/gafferhq/gaffer/gaffertest"
)

// Real workflows through the local batch system, in each mode.
func TestEndToEnd(t *testing.T) {
	for _, mode := range []local.Mode{local.InProcess, local.Workers, local.Subprocess} {
		t.Run(mode.String(), func(t *testing.T) {
			if mode != local.InProcess && testing.Short() {
				t.Skip("starts processes")
			}
			gaffertest.RunBatchSystem(t, gaffertest.BatchSystemConfig{New: func(t *testing.T) batchsystem.BatchSystem {
				s, err := local.New(local.Options{Mode: mode, Cores: 2, Memory: 1 << 30, Disk: 1 << 30})
				require.NoError(t, err)
				return s
			}})
		})
	}
}
