package scaler

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func running(id, typ string, workers int, launched time.Duration) Node {
	return Node{ID: id, Type: typ, State: NodeRunning, Workers: workers, Launched: t0.Add(launched)}
}

func TestPlanScaleInDrainsTheLeastBusyAndTerminatesOnlyIdleNodes(t *testing.T) {
	ty := []NodeType{nt("a", 4, 8*gb, false)}
	nodes := []Node{
		running("busy", "a", 3, 0),
		running("idle-late", "a", 0, 50*time.Minute),  // 50 min of its hour left at 60 min
		running("idle-early", "a", 0, 10*time.Minute), // 10 min left: goes first
		running("unknown", "a", -1, 0),
	}
	p := planScale(scaleInput{types: ty, desired: []int{1}, nodes: nodes, now: t0.Add(60 * time.Minute)})
	require.Equal(t, []string{"idle-early", "idle-late", "unknown"}, p.drain)
	require.Equal(t, []int{0}, p.add)
	require.Equal(t, 1, p.serving[0])

	term, kept, gone := pickIdle(p.candidates, nodes)
	require.ElementsMatch(t, []string{"idle-late", "idle-early"}, term)
	require.Empty(t, gone)
	require.Len(t, kept, 1)
	require.Equal(t, "unknown", kept[0].ID)
	require.Contains(t, kept[0].Reason, "unknown")
}

func TestPickIdleKeepsNodesThatGotAJobBeforeDraining(t *testing.T) {
	fresh := []Node{running("x", "a", 2, 0)}
	term, kept, gone := pickIdle([]string{"x", "vanished"}, fresh)
	require.Empty(t, term)
	require.Equal(t, []string{"vanished"}, gone)
	require.Equal(t, "draining: 2 job(s) still running", kept[0].Reason)
}

func TestPlanScaleUpPutsDrainingNodesBackBeforeAdding(t *testing.T) {
	ty := []NodeType{nt("a", 4, 8*gb, false)}
	nodes := []Node{running("d1", "a", 1, 0), running("d2", "a", 2, 0), running("s", "a", 0, 0)}
	p := planScale(scaleInput{types: ty, desired: []int{3}, nodes: nodes,
		draining: map[string]bool{"d1": true, "d2": true}, now: t0})
	require.Equal(t, []string{"d2", "d1"}, p.undrain, "busiest first")
	require.Equal(t, []int{0}, p.add)

	p = planScale(scaleInput{types: ty, desired: []int{2}, nodes: nodes,
		draining: map[string]bool{"d1": true, "d2": true}, now: t0})
	require.Equal(t, []string{"d2"}, p.undrain)
	require.Equal(t, []string{"d1"}, p.candidates, "d1 keeps draining")

	p = planScale(scaleInput{types: ty, desired: []int{5}, nodes: nodes, now: t0})
	require.Equal(t, []int{2}, p.add)
}

func TestPlanNeverRemovesStaticNodesAndIgnoresStoppingOnes(t *testing.T) {
	ty := []NodeType{nt("a", 4, 8*gb, false), nt("b", 4, 16*gb, false)}
	nodes := []Node{
		running("static", "a", 0, 0),
		{ID: "stopping", Type: "a", State: NodeStopping},
		running("foreign", "not-a-type", 0, 0),
	}
	p := planScale(scaleInput{types: ty, desired: []int{0, 0}, nodes: nodes,
		static: map[string]bool{"static": true}, now: t0})
	require.Empty(t, p.drain)
	require.Empty(t, p.candidates)
	require.Equal(t, []int{1, 0}, p.current)
	require.Len(t, p.kept, 1)
	require.Contains(t, p.kept[0].Reason, "static")
}
