//go:build unix

package niceadapter_test

import (
	"os"
	"testing"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/gaffertest"
)

// TestMain makes this test binary the worker that the adapter runs under
// nice, for the end-to-end suite.
func TestMain(m *testing.M) {
	gaffer.ServeWorker()
	os.Exit(m.Run())
}

// Real workflows through the adapter, a leader killed mid-workflow
// included.
func TestEndToEnd(t *testing.T) {
	gaffertest.RunBatchSystem(t, gaffertest.BatchSystemConfig{New: newNice})
}
