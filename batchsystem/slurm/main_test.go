package slurm

import (
	"os"
	"testing"

	"github.com/gafferhq/gaffer/batchsystem/pilot"
)

// TestMain makes the test binary a pilot when Slurm starts it as one
// (the Grouped checks of the conformance suite).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == pilot.Arg {
		os.Exit(pilot.Main(os.Args[2:]))
	}
	os.Exit(m.Run())
}
