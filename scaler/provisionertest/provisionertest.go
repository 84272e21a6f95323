// Package provisionertest is a conformance suite for scaler.Provisioner.
// Any implementation, including a user's, can run it:
//
//	func TestMyProvisioner(t *testing.T) {
//		provisionertest.Run(t, func(t *testing.T) scaler.Provisioner { return mine.New(...) })
//	}
//
// The suite adds a few nodes of the provisioner's cheapest-looking type
// (the first one listed) and terminates every node it added. It tolerates
// nodes that were there before (static nodes) and providers that
// terminate asynchronously (a terminated node may stay listed as
// stopping).
package provisionertest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/scaler"
)

// Run runs the suite; newProvisioner returns a fresh provisioner per test.
func Run(t *testing.T, newProvisioner func(t *testing.T) scaler.Provisioner) {
	s := suite{newProvisioner}
	t.Run("NodeTypesAreValid", s.nodeTypes)
	t.Run("AddListTerminate", s.addListTerminate)
	t.Run("AddZeroAndBadCounts", s.addZeroAndBad)
	t.Run("UnknownNodeType", s.unknownType)
	t.Run("TerminateUnknownIsIgnored", s.terminateUnknown)
	t.Run("CancelledContext", s.cancelled)
	t.Run("ConcurrentAddsGetUniqueIDs", s.concurrent)
}

type suite struct {
	new func(t *testing.T) scaler.Provisioner
}

// prov returns a provisioner and its first node type; every node the test
// adds is terminated at the end.
func (s suite) prov(t *testing.T) (scaler.Provisioner, scaler.NodeType, map[string]bool) {
	p := s.new(t)
	types, err := p.NodeTypes(t.Context())
	require.NoError(t, err)
	require.NotEmpty(t, types, "a provisioner has at least one node type")
	before := map[string]bool{}
	nodes, err := p.Nodes(t.Context())
	require.NoError(t, err)
	for _, n := range nodes {
		before[n.ID] = true
	}
	t.Cleanup(func() {
		nodes, err := p.Nodes(context.Background())
		if err != nil {
			return
		}
		var ids []string
		for _, n := range nodes {
			if !before[n.ID] {
				ids = append(ids, n.ID)
			}
		}
		_ = p.TerminateNodes(context.Background(), ids)
	})
	return p, types[0], before
}

// added lists the nodes that were not there before, not stopping.
func added(t *testing.T, p scaler.Provisioner, before map[string]bool) []scaler.Node {
	t.Helper()
	nodes, err := p.Nodes(t.Context())
	require.NoError(t, err)
	var out []scaler.Node
	seen := map[string]bool{}
	for _, n := range nodes {
		require.False(t, seen[n.ID], "node %s listed twice", n.ID)
		seen[n.ID] = true
		if !before[n.ID] && n.State != scaler.NodeStopping {
			out = append(out, n)
		}
	}
	return out
}

func (s suite) nodeTypes(t *testing.T) {
	p := s.new(t)
	types, err := p.NodeTypes(t.Context())
	require.NoError(t, err)
	require.NotEmpty(t, types)
	names := map[string]bool{}
	for _, nt := range types {
		require.NoError(t, nt.Validate())
		require.False(t, names[nt.Name], "node type %q listed twice", nt.Name)
		names[nt.Name] = true
	}
	again, err := p.NodeTypes(t.Context())
	require.NoError(t, err)
	require.Equal(t, types, again, "node types do not change")
}

func (s suite) addListTerminate(t *testing.T) {
	p, nt, before := s.prov(t)
	got, err := p.AddNodes(t.Context(), nt.Name, 2)
	require.NoError(t, err)
	require.GreaterOrEqual(t, got, 0)
	require.LessOrEqual(t, got, 2, "never more nodes than asked for")
	nodes := added(t, p, before)
	require.Len(t, nodes, got, "every added node is listed")
	for _, n := range nodes {
		require.NotEmpty(t, n.ID)
		require.Equal(t, nt.Name, n.Type)
		require.Contains(t, []scaler.NodeState{scaler.NodeStarting, scaler.NodeRunning}, n.State)
		require.False(t, n.Launched.IsZero(), "launch time is known")
		require.GreaterOrEqual(t, n.Workers, -1)
	}
	if got == 0 {
		t.Skip("the provisioner delivered no node; cannot check termination")
	}
	victim := nodes[0].ID
	require.NoError(t, p.TerminateNodes(t.Context(), []string{victim}))
	left := added(t, p, before)
	require.Len(t, left, got-1)
	require.False(t, slices.ContainsFunc(left, func(n scaler.Node) bool { return n.ID == victim }),
		"a terminated node is gone or stopping")
	require.NoError(t, p.TerminateNodes(t.Context(), []string{victim}), "terminating twice is harmless")
}

func (s suite) addZeroAndBad(t *testing.T) {
	p, nt, before := s.prov(t)
	got, err := p.AddNodes(t.Context(), nt.Name, 0)
	require.NoError(t, err)
	require.Zero(t, got)
	require.Empty(t, added(t, p, before))
	_, err = p.AddNodes(t.Context(), nt.Name, -1)
	require.Error(t, err, "a negative count is an error")
	require.Empty(t, added(t, p, before))
	require.NoError(t, p.TerminateNodes(t.Context(), nil))
}

func (s suite) unknownType(t *testing.T) {
	p, _, before := s.prov(t)
	_, err := p.AddNodes(t.Context(), "no-such-node-type-for-gaffer", 1)
	require.ErrorIs(t, err, scaler.ErrUnknownNodeType)
	require.Empty(t, added(t, p, before))
}

func (s suite) terminateUnknown(t *testing.T) {
	p, _, _ := s.prov(t)
	require.NoError(t, p.TerminateNodes(t.Context(), []string{"no-such-node-for-gaffer"}))
}

func (s suite) cancelled(t *testing.T) {
	p, nt, before := s.prov(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := p.AddNodes(ctx, nt.Name, 1)
	require.ErrorIs(t, err, context.Canceled)
	require.Empty(t, added(t, p, before), "a cancelled AddNodes adds nothing")
}

func (s suite) concurrent(t *testing.T) {
	p, nt, before := s.prov(t)
	const workers = 4
	var wg sync.WaitGroup
	total := make([]int, workers)
	errs := make([]error, workers)
	for i := range workers {
		wg.Go(func() {
			total[i], errs[i] = p.AddNodes(t.Context(), nt.Name, 1)
		})
	}
	wg.Go(func() { _, _ = p.Nodes(t.Context()) })
	wg.Wait()
	sum := 0
	for i := range workers {
		require.NoError(t, errs[i], fmt.Sprint("worker ", i))
		sum += total[i]
	}
	nodes := added(t, p, before)
	require.Len(t, nodes, sum, "IDs are unique and every node is listed")
}
