package gaffer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/batchsystem/local"
	"github.com/gafferhq/gaffer/jobstore"
)

// These tests run leaders with two batch systems: "inproc", goroutines
// of the leader's process, and "procs", worker processes. Every job says
// which process ran it.

const envRouteStore = "GAFFER_TEST_ROUTE_STORE"

type routeIn struct {
	Small, Big int
	Sleep      time.Duration
	Huge       bool // add a job no batch system of the test can ever run
}

func routePidOf(ctx context.Context, jc *gaffer.JobContext, sleep time.Duration) (int, error) {
	select {
	case <-time.After(sleep):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	mark("%s %d", jc.Kind(), jc.ID())
	return os.Getpid(), nil
}

var (
	routeSmall  = gaffer.MustRegister("routetest.small", routePidOf, small...)
	routeBig    = gaffer.MustRegister("routetest.big", routePidOf, gaffer.Cores(1), gaffer.Memory("16Mi"), gaffer.Disk("1Mi"))
	routeGather = gaffer.MustRegister("routetest.gather", func(_ context.Context, _ *gaffer.JobContext, pids []int) ([]int, error) {
		return pids, nil
	}, small...)
	routeRoot = gaffer.MustRegister("routetest.root", func(ctx context.Context, jc *gaffer.JobContext, in routeIn) ([]int, error) {
		var parts []gaffer.Input[int]
		add := func(j *gaffer.Job[int]) {
			jc.AddChild(j)
			parts = append(parts, j.Result())
		}
		for range in.Small {
			add(routeSmall.New(in.Sleep))
		}
		for range in.Big {
			add(routeBig.New(in.Sleep))
		}
		if in.Huge {
			add(routeBig.New(0, gaffer.Cores(64)))
		}
		g := routeGather.NewFrom(gaffer.Collect(parts...))
		jc.AddFollowOn(g)
		return gaffer.Forward(jc, g.Result())
	}, small...)
)

// byCores sends jobs of a core or more to worker processes.
func byCores(info gaffer.RouteInfo) string {
	if info.Requirements.Cores >= 1 {
		return "procs"
	}
	return "inproc"
}

func newRouteSystems() (map[string]batchsystem.BatchSystem, error) {
	// Half a core: five small jobs at once, so that a leader killed
	// early leaves small jobs issued.
	in, err := local.New(local.Options{Cores: 0.5})
	if err != nil {
		return nil, err
	}
	procs, err := local.New(local.Options{Mode: local.Workers, Cores: 2})
	if err != nil {
		return nil, err
	}
	return map[string]batchsystem.BatchSystem{"inproc": in, "procs": procs}, nil
}

func routeSystems(t *testing.T) map[string]batchsystem.BatchSystem {
	bss, err := newRouteSystems()
	require.NoError(t, err)
	t.Cleanup(func() {
		for _, bs := range bss {
			bs.Shutdown(context.Background())
		}
	})
	return bss
}

// routeAttempts reads the store's attempt records: the batch systems each
// job ran on, and each job's type.
func routeAttempts(t *testing.T, store string) (where map[jobstore.JobID][]string, kind map[jobstore.JobID]string) {
	t.Helper()
	where, kind = map[jobstore.JobID][]string{}, map[jobstore.JobID]string{}
	for _, a := range readAttempts(t, store) {
		where[a.Job] = append(where[a.Job], a.BatchSystem)
		kind[a.Job] = a.Kind
	}
	return where, kind
}

func readAttempts(t *testing.T, store string) []*jobstore.Attempt {
	t.Helper()
	s, err := jobstore.OpenBolt(store, nil)
	require.NoError(t, err)
	defer s.Close()
	var out []*jobstore.Attempt
	require.NoError(t, s.View(t.Context(), func(tx jobstore.ReadTx) error {
		for a, err := range tx.Attempts(0) {
			if err != nil {
				return err
			}
			out = append(out, a)
		}
		return nil
	}))
	return out
}

func TestRouteRunsEachJobWhereRouted(t *testing.T) {
	store := filepath.Join(t.TempDir(), "s.db")
	l, err := gaffer.NewLeader(gaffer.Config{Store: store, BatchSystems: routeSystems(t), Route: byCores, NoSync: true})
	require.NoError(t, err)
	pids, err := gaffer.Run(t.Context(), l, routeRoot.New(routeIn{Small: 6, Big: 3}))
	require.NoError(t, err)
	require.NoError(t, l.Close())

	require.Len(t, pids, 9)
	for i, pid := range pids {
		if i < 6 {
			require.Equal(t, os.Getpid(), pid, "small job %d ran in the leader's process", i)
		} else {
			require.NotEqual(t, os.Getpid(), pid, "big job %d ran in a worker process", i)
			require.NotZero(t, pid)
		}
	}
	where, kind := routeAttempts(t, store)
	require.Len(t, where, 11)
	for id, ws := range where {
		want := "inproc"
		if kind[id] == "routetest.big" {
			want = "procs"
		}
		require.Equal(t, []string{want}, ws, "job %s (%s)", id, kind[id])
	}
}

func TestRouteWhyNamesTheBatchSystem(t *testing.T) {
	store := filepath.Join(t.TempDir(), "s.db")
	l, err := gaffer.NewLeader(gaffer.Config{Store: store, BatchSystems: routeSystems(t), Route: byCores, NoSync: true})
	require.NoError(t, err)
	defer l.Close()
	done := make(chan error, 1)
	go func() {
		_, err := gaffer.Run(t.Context(), l, routeRoot.New(routeIn{Big: 1, Sleep: 5 * time.Second}))
		done <- err
	}()
	// j1 is the root; j2 its one big child.
	require.Eventually(t, func() bool { return l.Why(2) == `issued to batch system "procs"` }, 10*time.Second, 10*time.Millisecond,
		"Why(j2) = %q", l.Why(2))
	l.CancelWorkflow()
	require.ErrorIs(t, <-done, gaffer.ErrCancelled)
}

func TestRouteRefusals(t *testing.T) {
	t.Run("unknown name", func(t *testing.T) {
		store := filepath.Join(t.TempDir(), "s.db")
		rule := func(info gaffer.RouteInfo) string {
			if info.Kind == "routetest.big" {
				return "gpu"
			}
			return "inproc"
		}
		l, err := gaffer.NewLeader(gaffer.Config{Store: store, BatchSystems: routeSystems(t), Route: rule, NoSync: true, RetryCount: 3})
		require.NoError(t, err)
		defer l.Close()
		_, err = gaffer.Run(t.Context(), l, routeRoot.New(routeIn{Small: 1, Big: 1}))
		require.Error(t, err)
		require.Contains(t, err.Error(), `job routetest.big (j3): Config.Route chose batch system "gpu", which is not one of Config.BatchSystems ("inproc", "procs")`)
		require.Equal(t, 1, l.Stats().Failures, "refused once, for good")
	})
	t.Run("never enough", func(t *testing.T) {
		store := filepath.Join(t.TempDir(), "s.db")
		l, err := gaffer.NewLeader(gaffer.Config{Store: store, BatchSystems: routeSystems(t), Route: byCores, NoSync: true, RetryCount: 3})
		require.NoError(t, err)
		defer l.Close()
		_, err = gaffer.Run(t.Context(), l, routeRoot.New(routeIn{Huge: true}))
		require.Error(t, err)
		require.Contains(t, err.Error(), `job routetest.big (j2) could not be issued to batch system "procs" (routed by Config.Route): `)
		require.Contains(t, err.Error(), "can ever provide")
		require.Equal(t, 1, l.Stats().Failures, "refused once, for good")
	})
	t.Run("config", func(t *testing.T) {
		bss := routeSystems(t)
		for _, c := range []struct {
			cfg  gaffer.Config
			want string
		}{
			{gaffer.Config{BatchSystem: bss["inproc"], BatchSystems: bss}, "Config.BatchSystem and Config.BatchSystems: set one"},
			{gaffer.Config{Route: byCores}, "Config.Route: it routes among Config.BatchSystems, which is empty"},
			{gaffer.Config{BatchSystems: map[string]batchsystem.BatchSystem{"x": nil}}, `Config.BatchSystems["x"]: nil`},
			{gaffer.Config{BatchSystems: bss, ScaledBatchSystem: "slurm"}, `Config.ScaledBatchSystem "slurm": not one of Config.BatchSystems`},
		} {
			c.cfg.Store = filepath.Join(t.TempDir(), "s.db")
			_, err := gaffer.NewLeader(c.cfg)
			require.ErrorContains(t, err, c.want)
		}
	})
}

// routeLeaderMain runs the routed workflow in a child process, which the
// test kills.
func routeLeaderMain(store string) int {
	bss, err := newRouteSystems()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	l, err := gaffer.NewLeader(gaffer.Config{Store: store, BatchSystems: bss, Route: byCores, RetryBackoff: -1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	_, err = gaffer.Run(context.Background(), l, routeRoot.New(routeIn{Small: 20, Big: 8, Sleep: 300 * time.Millisecond}))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// A leader killed with SIGKILL in the middle of a routed workflow, resumed
// on the same store by a leader whose rule would send every job to the
// worker processes, keeps every job that was routed where it was: each of
// its attempts, before and after the kill, names the same batch system.
func TestRouteKeptAcrossLeaderDeath(t *testing.T) {
	dir := t.TempDir()
	store, marks := filepath.Join(dir, "s.db"), filepath.Join(dir, "marks")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envRouteStore+"="+store, envMarks+"="+marks, envPhase+"=first")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	require.Eventually(t, func() bool {
		return strings.Count(readFile(marks), "routetest.big") >= 2
	}, time.Minute, 5*time.Millisecond, "output: %s", &out)
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()

	// What the dead leader recorded.
	s, err := jobstore.OpenBolt(store, nil)
	require.NoError(t, err)
	routed := map[jobstore.JobID]string{}
	require.NoError(t, s.View(t.Context(), func(tx jobstore.ReadTx) error {
		for j, err := range tx.Jobs() {
			if err != nil {
				return err
			}
			if j.BatchSystem != "" {
				routed[j.ID] = j.BatchSystem
			}
		}
		return nil
	}))
	require.NoError(t, s.Close())
	require.Contains(t, routed, jobstore.JobID(1), "the root's record keeps its batch system while its children run")
	require.Equal(t, "inproc", routed[1])

	t.Setenv(envPhase, "second")
	t.Setenv(envMarks, marks)
	l, err := gaffer.NewLeader(gaffer.Config{Store: store, BatchSystems: routeSystems(t), NoSync: true, RetryBackoff: -1,
		Route: func(gaffer.RouteInfo) string { return "procs" }})
	require.NoError(t, err)
	pids, err := gaffer.Run[[]int](t.Context(), l, nil)
	require.NoError(t, err)
	require.NoError(t, l.Close())
	require.Len(t, pids, 28)

	kept, rerouted, keptInproc := 0, 0, 0
	for _, a := range readAttempts(t, store) {
		if bs, ok := routed[a.Job]; ok {
			require.Equal(t, bs, a.BatchSystem, "job %s (%s), attempt of epoch %d, stays on the batch system it was routed to", a.Job, a.Kind, a.Epoch)
			kept++
			if a.Epoch > 1 && bs == "inproc" {
				keptInproc++ // against the new rule
			}
		} else if a.Epoch > 1 {
			// Jobs the dead leader never routed follow the new rule.
			require.Equal(t, "procs", a.BatchSystem, "job %s (%s)", a.Job, a.Kind)
			rerouted++
		}
	}
	require.NotZero(t, keptInproc, "some in-process jobs were running when the leader died, and ran in-process again")
	t.Logf("%d jobs routed by the dead leader, %d attempts of them (%d in-process ones after the kill); %d attempts routed by the new rule",
		len(routed), kept, keptInproc, rerouted)
}

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	return string(b)
}
