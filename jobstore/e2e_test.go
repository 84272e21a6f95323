package jobstore_test

import (
	"path/filepath"
	"testing"

	"github.com/gafferhq/gaffer/gaffertest"
	"github.com/gafferhq/gaffer/jobstore"
)

// Real workflows on the bbolt store, a leader killed and restarted on it
// included.
func TestBoltEndToEnd(t *testing.T) {
	gaffertest.RunJobStore(t, func(t *testing.T, dir string) (jobstore.Store, error) {
		return jobstore.OpenBolt(filepath.Join(dir, "wf.db"), nil)
	})
}
