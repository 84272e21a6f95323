package local_test

import (
	"os"
	"testing"

	"github.com/gafferhq/gaffer"
)

// TestMain lets this test binary serve as the worker of the end-to-end
// suite's subprocess jobs.
func TestMain(m *testing.M) {
	gaffer.ServeWorker()
	os.Exit(m.Run())
}
