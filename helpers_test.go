package gaffer_test

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem/local"
)

// trace records the order in which in-process jobs ran.
var trace struct {
	sync.Mutex
	m map[string][]string // by test name
}

func record(test, step string) {
	trace.Lock()
	defer trace.Unlock()
	if trace.m == nil {
		trace.m = map[string][]string{}
	}
	trace.m[test] = append(trace.m[test], step)
}

// resetTrace forgets what earlier runs of a test recorded (go test -count).
func resetTrace(test string) {
	trace.Lock()
	defer trace.Unlock()
	delete(trace.m, test)
}

func steps(test string) []string {
	trace.Lock()
	defer trace.Unlock()
	return slices.Clone(trace.m[test])
}

type testOpts struct {
	mode  local.Mode
	cfg   func(*gaffer.Config)
	store string
}

// newLeader makes a leader on a fresh store in a temp dir, with retries
// that do not wait.
func newLeader(t *testing.T, o testOpts) (*gaffer.Leader, string) {
	t.Helper()
	bs, err := local.New(local.Options{Mode: o.mode, Cores: 4, Memory: 8 << 30, Disk: 8 << 30})
	require.NoError(t, err)
	t.Cleanup(func() { bs.Shutdown(context.Background()) })
	store := o.store
	if store == "" {
		store = filepath.Join(t.TempDir(), "wf.db")
	}
	cfg := gaffer.Config{Store: store, BatchSystem: bs, RetryBackoff: -1,
		DefaultRequirements: gaffer.Requirements{Cores: 0.1, Memory: 1 << 20, Disk: 1 << 20}}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	l, err := gaffer.NewLeader(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l, store
}

func indexOf(t *testing.T, s []string, x string) int {
	t.Helper()
	i := slices.Index(s, x)
	require.GreaterOrEqual(t, i, 0, "%q never ran; ran: %v", x, s)
	return i
}
