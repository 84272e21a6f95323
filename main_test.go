package gaffer_test

import (
	"os"
	"testing"

	"github.com/gafferhq/gaffer"
)

// TestMain lets this test binary serve as the worker of subprocess jobs,
// and as a leader process that a test can kill.
func TestMain(m *testing.M) {
	gaffer.ServeWorker()
	if dir := os.Getenv(envRequestCancel); dir != "" {
		os.Exit(requestCancelMain(dir))
	}
	if store := os.Getenv(envExitStore); store != "" {
		os.Exit(exitLeaderMain(store))
	}
	if store := os.Getenv(envChainStore); store != "" {
		os.Exit(chainLeaderMain(store))
	}
	if store := os.Getenv(envRouteStore); store != "" {
		os.Exit(routeLeaderMain(store))
	}
	if store := os.Getenv(envPoolStore); store != "" {
		os.Exit(poolLeaderMain(store))
	}
	if store := os.Getenv(envLeaderStore); store != "" {
		os.Exit(leaderMain(store))
	}
	os.Exit(m.Run())
}
