package gaffer

import (
	"context"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/batchsystem/local"
	"github.com/gafferhq/gaffer/scaler"
)

// idleProvisioner has one node type and never adds a node.
type idleProvisioner struct{}

func (idleProvisioner) NodeTypes(context.Context) ([]scaler.NodeType, error) {
	return []scaler.NodeType{{Name: "n", Shape: scaler.Shape{Cores: 4, Memory: 8 << 30, Disk: 8 << 30}}}, nil
}
func (idleProvisioner) AddNodes(context.Context, string, int) (int, error) { return 0, nil }
func (idleProvisioner) TerminateNodes(context.Context, []string) error     { return nil }
func (idleProvisioner) Nodes(context.Context) ([]scaler.Node, error)       { return nil, nil }

var (
	routeHold = make(chan struct{})
	routeWait = MustRegister("routeinternal.wait", func(ctx context.Context, _ *JobContext, _ int) (int, error) {
		select {
		case <-routeHold:
		case <-ctx.Done():
		}
		return 0, nil
	}, Cores(0.1), Memory("1Mi"), Disk("1Mi"), RunOn("here"))
	routeWaitCluster = MustRegister("routeinternal.cluster", func(ctx context.Context, _ *JobContext, _ int) (int, error) {
		select {
		case <-routeHold:
		case <-ctx.Done():
		}
		return 0, nil
	}, Cores(0.1), Memory("1Mi"), Disk("1Mi"), RunOn("cluster"))
	routeWaitRoot = MustRegister("routeinternal.root", func(_ context.Context, jc *JobContext, n int) (int, error) {
		for range n {
			jc.AddChild(routeWait.New(0))
			jc.AddChild(routeWaitCluster.New(0))
		}
		return 0, nil
	}, Cores(0.1), Memory("1Mi"), Disk("1Mi"))
)

// The cluster scaler sees only the jobs routed to the batch system it
// provisions (Config.ScaledBatchSystem), though the two batch systems
// number their jobs alike.
func TestScalerSeesOnlyItsBatchSystem(t *testing.T) {
	routeHold = make(chan struct{}) // closed by an earlier run (-count)
	bss := map[string]batchsystem.BatchSystem{}
	for _, n := range []string{"here", "cluster"} {
		bs, err := local.New(local.Options{Cores: 4})
		require.NoError(t, err)
		t.Cleanup(func() { bs.Shutdown(context.Background()) })
		bss[n] = bs
	}
	l, err := NewLeader(Config{Store: filepath.Join(t.TempDir(), "s.db"), NoSync: true, BatchSystems: bss,
		ScaledBatchSystem: "cluster", Provisioner: idleProvisioner{}, Scaling: scaler.Config{ScaleInterval: time.Hour}})
	require.NoError(t, err)
	defer l.Close()
	done := make(chan error, 1)
	go func() {
		_, err := l.Run(t.Context(), routeWaitRoot.New(3, RunOn("here")))
		done <- err
	}()
	require.Eventually(t, func() bool { return l.Status().Issued == 6 }, 10*time.Second, 5*time.Millisecond)
	// The workload hears of issues once their commit lands.
	var jobs []scaler.Job
	require.Eventually(t, func() bool {
		jobs, err = l.work.Issued(t.Context())
		return err == nil && len(jobs) >= 3
	}, 10*time.Second, 5*time.Millisecond)
	var kinds []string
	for _, j := range jobs {
		kinds = append(kinds, j.Kind)
	}
	sort.Strings(kinds)
	require.Equal(t, []string{"routeinternal.cluster", "routeinternal.cluster", "routeinternal.cluster"}, kinds)
	close(routeHold)
	require.NoError(t, <-done)
	jobs, err = l.work.Issued(t.Context())
	require.NoError(t, err)
	require.Empty(t, jobs)
}
