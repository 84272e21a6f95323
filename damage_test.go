package gaffer_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem/local"
	"github.com/gafferhq/gaffer/examples/fanout/fanout"
	"github.com/gafferhq/gaffer/jobstore"
)

const damageLeaves = 40

var damageSum = damageLeaves * (damageLeaves - 1) / 2

// damageStores makes two real stores of a fan-out: one finished, one
// stopped half way (the root and some leaves done, the rest pending).
func damageStores(t *testing.T) (finished, half []byte) {
	t.Helper()
	dir := t.TempDir()
	cfg := func(store string) gaffer.Config {
		bs, err := local.New(local.Options{Mode: local.InProcess, Cores: 2})
		require.NoError(t, err)
		t.Cleanup(func() { bs.Shutdown(context.Background()) })
		return gaffer.Config{Store: store, BatchSystem: bs, NoSync: true}
	}
	l, err := gaffer.NewLeader(cfg(filepath.Join(dir, "finished.db")))
	require.NoError(t, err)
	got, err := gaffer.Run(t.Context(), l, fanout.Root.New(damageLeaves))
	require.NoError(t, err)
	require.Equal(t, damageSum, got)
	require.NoError(t, l.Close())

	l, err = gaffer.NewLeader(cfg(filepath.Join(dir, "half.db")))
	require.NoError(t, err)
	require.NoError(t, l.Start(t.Context(), fanout.Root.New(damageLeaves)))
	for range damageLeaves / 2 {
		_, err := l.RunOneJob(t.Context())
		require.NoError(t, err)
	}
	require.NoError(t, l.Close())

	finished, err = os.ReadFile(filepath.Join(dir, "finished.db"))
	require.NoError(t, err)
	half, err = os.ReadFile(filepath.Join(dir, "half.db"))
	require.NoError(t, err)
	return finished, half
}

// A store damaged anywhere, by a cut or a changed byte, gives a clear
// error or the correct result: never a crash, a panic or a wrong value.
// (A damaged page that no transaction reads, and bbolt's spare copy of
// its meta page, leave the workflow intact: those cases give the right
// sum.)
func TestDamagedStoreNeverCrashesNorLies(t *testing.T) {
	finished, half := damageStores(t)
	rng := rand.New(rand.NewPCG(2026, 12))
	for _, base := range []struct {
		name string
		b    []byte
	}{{"finished", finished}, {"half-done", half}} {
		// bbolt grows its file in big steps: damage only the part in use.
		used := len(base.b)
		for used > 0 && base.b[used-1] == 0 {
			used--
		}
		outcomes := map[string]int{}
		const cases = 220
		for i := range cases {
			b := append([]byte(nil), base.b...)
			var what string
			if i%4 == 0 {
				n := rng.IntN(used)
				b = b[:n]
				what = fmt.Sprintf("cut at %d of %d", n, len(base.b))
			} else {
				off := rng.IntN(used)
				b[off] ^= byte(1 + rng.IntN(255))
				what = fmt.Sprintf("byte %d of %d changed", off, len(base.b))
			}
			if c := os.Getenv("GAFFER_DAMAGE_DEBUG"); c != "" {
				if c != fmt.Sprint(i) {
					continue
				}
				t.Logf("case %d: %s", i, what)
			}
			got, err := runDamaged(t, b)
			switch {
			case err == nil:
				require.Equal(t, damageSum, got, "%s store, %s: a wrong answer", base.name, what)
				outcomes["correct result"]++
			default:
				outcomes[errorKind(err)]++
				if errorKind(err) == "FailedJobsError" {
					t.Logf("%s: %v", what, err)
				}
			}
		}
		var lines []string
		for k, n := range outcomes {
			lines = append(lines, fmt.Sprintf("%s: %d", k, n))
		}
		sort.Strings(lines)
		t.Logf("%s store (%d bytes, %d in use), %d cases: %s", base.name, len(base.b), used, cases, strings.Join(lines, "; "))
	}
}

func runDamaged(t *testing.T, b []byte) (int, error) {
	store := filepath.Join(t.TempDir(), "damaged.db")
	require.NoError(t, os.WriteFile(store, b, 0o600))
	bs, err := local.New(local.Options{Mode: local.InProcess, Cores: 2})
	require.NoError(t, err)
	defer bs.Shutdown(context.Background())
	l, err := gaffer.NewLeader(gaffer.Config{Store: store, BatchSystem: bs, NoSync: true, RetryBackoff: -1,
		PollInterval: 50 * time.Millisecond})
	if err != nil {
		return 0, err
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	got, err := gaffer.Run(ctx, l, fanout.Root.New(damageLeaves))
	if errors.Is(err, context.DeadlineExceeded) {
		t.Logf("status: %v", l.Status())
		_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
		_ = os.WriteFile(filepath.Join(os.TempDir(), "gaffer-hung.db"), b, 0o600)
	}
	require.False(t, errors.Is(err, context.DeadlineExceeded), "a damaged store hung the leader")
	return got, err
}

// errorKind names the sentinel an error matches, for the summary.
func errorKind(err error) string {
	for _, k := range []struct {
		name string
		err  error
	}{
		{"ErrCorrupt", jobstore.ErrCorrupt}, {"ErrForeign", jobstore.ErrForeign},
		{"ErrWorkflowMismatch", gaffer.ErrWorkflowMismatch}, {"ErrUnknownJobType", gaffer.ErrUnknownJobType},
		{"ErrUnfulfilledPromise", gaffer.ErrUnfulfilledPromise}, {"ErrBadInput", gaffer.ErrBadInput},
	} {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	var fe *gaffer.FailedJobsError
	if errors.As(err, &fe) {
		return "FailedJobsError"
	}
	return "other: " + err.Error()
}
