// Package leadertest runs gaffer's leader on a real Slurm cluster, end to
// end: the leader issues every job with sbatch, and the test binary itself
// is the worker that Slurm starts. The tests run only with GAFFER_SLURM=1:
//
//	scripts/slurm-cluster.sh up && GAFFER_SLURM=1 go test ./batchsystem/slurm/leadertest
//
// With GAFFER_SLURM=1 they fail, rather than skip, when the cluster cannot
// be reached. Jobs run on the same machine, so the leader's work directory
// can be a t.TempDir: slurmd runs the jobs as the submitting user.
package leadertest

import (
	"os"
	"testing"

	"github.com/gafferhq/gaffer"
)

// TestMain makes the test binary a gaffer worker when Slurm starts it as
// one, and a leader that a test can SIGKILL when started with envStore.
func TestMain(m *testing.M) {
	gaffer.ServeWorker()
	if store := os.Getenv(envStore); store != "" {
		os.Exit(childLeaderMain(store))
	}
	os.Exit(m.Run())
}
