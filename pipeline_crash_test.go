package gaffer_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem/local"
)

const (
	envChainStore = "GAFFER_TEST_CHAIN_STORE"
	chainSteps    = 800
)

// chainStep adds its index to the total so far: a wrong or lost input
// shows in the last value.
type chainVal struct {
	I, Total int
	Pad      string
}

var PipeStep = gaffer.MustRegister("pipe.step", func(ctx context.Context, jc *gaffer.JobContext, prev chainVal) (chainVal, error) {
	time.Sleep(time.Millisecond)
	return chainVal{I: prev.I + 1, Total: prev.Total + prev.I + 1, Pad: prev.Pad}, nil
}, small...)

var PipeRoot = gaffer.MustRegister("pipe.root", func(ctx context.Context, jc *gaffer.JobContext, n int) (chainVal, error) {
	last := PipeStep.New(chainVal{Pad: strings.Repeat("p", 512)})
	jc.AddChild(last)
	for range n - 1 {
		next := PipeStep.NewFrom(last.Result())
		last.AddChild(next)
		last = next
	}
	return gaffer.Forward(jc, last.Result())
}, small...)

// chainLeaderMain runs the chain in-process, where the leader commits in
// the background while it issues; the test kills it.
func chainLeaderMain(store string) int {
	bs, err := local.New(local.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	l, err := gaffer.NewLeader(gaffer.Config{Store: store, BatchSystem: bs})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer l.Close()
	v, err := gaffer.Run(context.Background(), l, PipeRoot.New(chainSteps))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("last", v.I, v.Total)
	return 0
}

// storedResults counts the results a closed store holds.
func storedResults(t *testing.T, path string) int {
	t.Helper()
	db, err := bolt.Open(path, 0o644, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	require.NoError(t, err)
	defer db.Close()
	n := 0
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("results")).ForEach(func(_, _ []byte) error { n++; return nil })
	}))
	return n
}

// A leader that commits in the background, killed with SIGKILL again and
// again in the middle of a chain whose every step reads the one before,
// leaves a store the next leader finishes with the right value: nothing
// issued from a plan that never landed is taken for done, and no result
// a step still reads was deleted.
func TestPipelinedLeaderKilledMidChain(t *testing.T) {
	if testing.Short() {
		t.Skip("kills leaders")
	}
	store := filepath.Join(t.TempDir(), "chain.db")
	run := func() (*exec.Cmd, *strings.Builder) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envChainStore+"="+store)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		require.NoError(t, cmd.Start())
		return cmd, &out
	}
	for kill := range 5 {
		cmd, out := run()
		time.Sleep(time.Duration(150+40*kill) * time.Millisecond)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		err := cmd.Wait()
		if err == nil {
			t.Logf("kill %d came after the end: %s", kill, out)
			break
		}
	}
	cmd, out := run()
	require.NoError(t, cmd.Wait(), "the last leader: %s", out)
	want := chainSteps * (chainSteps + 1) / 2
	require.Contains(t, out.String(), fmt.Sprintf("last %d %d", chainSteps, want))
	n := storedResults(t, store)
	require.LessOrEqual(t, n, 4, "results once read are deleted (a few of jobs finished before a kill stay)")
}
