// Package leadertest runs gaffer's leader on a real Grid Engine cluster,
// end to end: the leader issues every job with qsub, and the test binary
// itself is the worker that Grid Engine starts. The tests run only with
// GAFFER_GRIDENGINE=1:
//
//	scripts/gridengine-cluster.sh up && GAFFER_GRIDENGINE=1 go test ./batchsystem/gridengine/leadertest
//
// With GAFFER_GRIDENGINE=1 they fail, rather than skip, when the cluster
// cannot be reached. Jobs run on the same machine, so the leader's work
// directory can be a t.TempDir: the execution daemon runs the jobs as the
// submitting user.
package leadertest

import (
	"os"
	"testing"

	"github.com/gafferhq/gaffer"
)

// TestMain makes the test binary a gaffer worker when Grid Engine starts
// it as one, and a leader that a test can SIGKILL when started with
// envStore.
func TestMain(m *testing.M) {
	gaffer.ServeWorker()
	if store := os.Getenv(envStore); store != "" {
		os.Exit(childLeaderMain(store))
	}
	os.Exit(m.Run())
}
