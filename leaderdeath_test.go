package gaffer_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem/local"
)

const envExitStore = "GAFFER_TEST_EXIT_STORE"

// Exiter exits the process it runs in: in-process, its leader's.
var Exiter = gaffer.MustRegister("test.exiter", func(ctx context.Context, jc *gaffer.JobContext, code int) (int, error) {
	os.Exit(code)
	return 0, nil
})

// exitLeaderMain runs, in a child process, a leader whose in-process job
// calls os.Exit(3).
func exitLeaderMain(store string) int {
	bs, err := local.New(local.Options{Mode: local.InProcess, Cores: 2})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer bs.Shutdown(context.Background())
	l, err := gaffer.NewLeader(gaffer.Config{Store: store, BatchSystem: bs, RetryCount: gaffer.NoRetries, MaxLeaderDeaths: 2,
		DefaultRequirements: gaffer.Requirements{Cores: 0.1, Memory: 1 << 20, Disk: 1 << 20}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer l.Close()
	_, err = gaffer.Run(context.Background(), l, Exiter.New(3, gaffer.Name("exiter")))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// A job that calls os.Exit in the leader's process takes the leader down;
// after MaxLeaderDeaths of them in a row it is charged a try, and with no
// tries left the workflow ends with it failed, saying why, instead of
// dying at every resume.
func TestJobThatKillsItsLeaderIsCharged(t *testing.T) {
	store := filepath.Join(t.TempDir(), "exit.db")
	deaths := 0
	for run := 1; ; run++ {
		require.LessOrEqual(t, run, 5, "the workflow never ended")
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envExitStore+"="+store)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		require.True(t, errors.As(err, &ee), "run %d: %v\n%s", run, err, out)
		if ee.ExitCode() == 3 {
			deaths++
			continue
		}
		require.Equal(t, 1, ee.ExitCode(), "%s", out)
		require.Contains(t, string(out), "exiter (j1, type test.exiter) failed after 1 attempt(s)")
		require.Contains(t, string(out), "each of the last 2 times the leader died: it takes its leader down")
		break
	}
	require.Equal(t, 2, deaths)
}
