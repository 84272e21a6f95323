package scaler

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"
)

// KeptNode is a node the scaler wanted gone and did not terminate, and why.
type KeptNode struct {
	ID     string
	Type   string
	Reason string
}

// scaleInput is the snapshot planScale decides on.
type scaleInput struct {
	types    []NodeType
	desired  []int           // per type
	nodes    []Node          // from Provisioner.Nodes
	draining map[string]bool // nodes drained by an earlier pass and not yet terminated
	static   map[string]bool // nodes present when the scaler started
	now      time.Time
}

// scalePlan is what one pass does.
type scalePlan struct {
	add        []int    // nodes to add, per type
	undrain    []string // draining nodes put back to work instead of adding new ones
	drain      []string // nodes chosen for removal now
	candidates []string // every draining node after this pass: terminate each once idle
	serving    []int    // per type: nodes counted as in service after the plan (not draining, not stopping)
	current    []int    // per type: nodes before the plan, not stopping
	kept       []KeptNode
}

// planScale decides, per node type, which nodes to add, put back to work or
// drain to reach the desired count. It follows Toil's setNodeCount:
//
//   - draining nodes do not count as in service; when more nodes are
//     wanted, draining ones are put back to work before new ones are added;
//   - when fewer are wanted, the nodes with fewest running jobs go first
//     (unknown counts as one), and among equals the one with least of its
//     billing slice left, since it has used what it paid for;
//   - static nodes are never chosen; stopping nodes are ignored.
//
// It does not terminate anything: every draining node becomes a
// candidate, terminated by pickIdle once it reports no running job.
func planScale(in scaleInput) scalePlan {
	n := len(in.types)
	p := scalePlan{add: make([]int, n), serving: make([]int, n), current: make([]int, n)}
	index := map[string]int{}
	for i, t := range in.types {
		index[t.Name] = i
	}
	byType := make([][]Node, n)
	for _, nd := range in.nodes {
		i, ok := index[nd.Type]
		if !ok || nd.State == NodeStopping {
			continue
		}
		byType[i] = append(byType[i], nd)
	}
	draining := map[string]bool{}
	for i, t := range in.types {
		nodes := byType[i]
		slices.SortFunc(nodes, func(a, b Node) int { return cmp.Compare(a.ID, b.ID) })
		var ignored, active []Node
		for _, nd := range nodes {
			if in.draining[nd.ID] {
				ignored = append(ignored, nd)
			} else {
				active = append(active, nd)
			}
		}
		p.current[i] = len(nodes)
		delta := in.desired[i] - len(active)
		if delta > 0 && len(ignored) > 0 {
			// Put back the busiest first: they would take longest to drain.
			slices.SortStableFunc(ignored, func(a, b Node) int { return cmp.Compare(workers(b), workers(a)) })
			k := min(delta, len(ignored))
			for _, nd := range ignored[:k] {
				p.undrain = append(p.undrain, nd.ID)
			}
			active = append(active, ignored[:k]...)
			ignored = ignored[k:]
			delta -= k
		}
		if delta > 0 {
			p.add[i] = delta
		}
		for _, nd := range ignored {
			draining[nd.ID] = true
		}
		p.serving[i] = len(active)
		if delta >= 0 {
			continue
		}
		var removable []Node
		for _, nd := range active {
			if in.static[nd.ID] {
				continue
			}
			removable = append(removable, nd)
		}
		slices.SortStableFunc(removable, func(a, b Node) int {
			return cmp.Or(cmp.Compare(workers(a), workers(b)),
				cmp.Compare(billingLeft(a, t, in.now), billingLeft(b, t, in.now)))
		})
		k := min(-delta, len(removable))
		for _, nd := range removable[:k] {
			p.drain = append(p.drain, nd.ID)
			draining[nd.ID] = true
		}
		p.serving[i] -= k
		if k < -delta {
			for _, nd := range active {
				if in.static[nd.ID] {
					p.kept = append(p.kept, KeptNode{nd.ID, t.Name, "static: present when the scaler started, never terminated"})
				}
			}
		}
	}
	for id := range draining {
		p.candidates = append(p.candidates, id)
	}
	slices.Sort(p.candidates)
	return p
}

// workers is the running job count used to order nodes for removal:
// unknown counts as one, as in Toil.
func workers(n Node) int {
	if n.Workers < 0 {
		return 1
	}
	return n.Workers
}

// billingLeft is the fraction of its current billing slice a node has left.
func billingLeft(n Node, t NodeType, now time.Time) float64 {
	if n.Launched.IsZero() || t.Shape.WallTime <= 0 {
		return 1
	}
	used := float64(now.Sub(n.Launched)) / float64(t.Shape.WallTime)
	return 1 - (used - math.Floor(used))
}

// pickIdle chooses, among the candidates, the nodes to terminate now: those
// that fresh, taken after draining, shows with no running job. The others
// are kept, with why. Candidates that are gone are dropped.
func pickIdle(candidates []string, fresh []Node) (terminate []string, kept []KeptNode, gone []string) {
	byID := map[string]Node{}
	for _, n := range fresh {
		byID[n.ID] = n
	}
	for _, id := range candidates {
		n, ok := byID[id]
		switch {
		case !ok:
			gone = append(gone, id)
		case n.State == NodeStopping:
			kept = append(kept, KeptNode{id, n.Type, "already stopping"})
		case n.Workers == 0:
			terminate = append(terminate, id)
		case n.Workers < 0:
			kept = append(kept, KeptNode{id, n.Type, "draining: running jobs unknown, so never terminated"})
		default:
			kept = append(kept, KeptNode{id, n.Type, fmt.Sprintf("draining: %d job(s) still running", n.Workers)})
		}
	}
	return terminate, kept, gone
}
