package gaffer

import (
	"fmt"
	"io"

	"github.com/gafferhq/gaffer/internal/dag"
)

// WriteGraph draws the job graph reachable from root, before it runs, in
// format "dot" (Graphviz) or "mermaid". Children are solid edges,
// follow-ons dashed, services dotted. Leaves of one type under one parent
// (a fan-out) are collapsed into one node "type ×N".
//
// It only reads the graph: root can still be run afterwards, and jobs
// can still be added to it.
func WriteGraph(w io.Writer, root Node, format string) error {
	if format != "dot" && format != "mermaid" {
		return fmt.Errorf("graph format %q: want dot or mermaid", format)
	}
	g := graphOf(root.node())
	return dag.Write(w, g, format)
}

// graphOf walks the graph from root under graphMu, without marking or
// sealing anything (collect's marks are its own).
func graphOf(root *node) *dag.Graph {
	graphMu.Lock()
	defer graphMu.Unlock()
	g := &dag.Graph{}
	ids := map[*node]string{}
	id := func(n *node) string {
		if s, ok := ids[n]; ok {
			return s
		}
		s := fmt.Sprintf("n%d", len(ids)+1)
		ids[n] = s
		g.Nodes = append(g.Nodes, dag.Node{ID: s, Label: n.display(), Service: n.service})
		return s
	}
	leaf := func(n *node) bool {
		return len(n.edges().children) == 0 && len(n.edges().followOns) == 0 && len(n.edges().services) == 0 && n.npreds() <= 1
	}
	// group collapses a parent's leaf successors of one type and edge
	// kind: the first of them stands for all, with a count.
	type groupKey struct {
		from, kind string
		edge       int
	}
	kinds := map[int]string{} // a group's type, by index into g.Nodes
	stack := []*node{root}
	id(root)
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		from := ids[n]
		groups := map[groupKey]int{} // index into g.Nodes
		succ := func(list []*node, kind int) {
			for _, s := range list {
				if _, seen := ids[s]; seen {
					g.Edges = append(g.Edges, dag.Edge{From: from, To: ids[s], Kind: kind})
					continue
				}
				if leaf(s) && !s.service {
					k := groupKey{from, s.kind, kind}
					if i, ok := groups[k]; ok {
						g.Nodes[i].Count++
						ids[s] = g.Nodes[i].ID
						continue
					}
					groups[k] = len(g.Nodes)
					to := id(s)
					g.Nodes[len(g.Nodes)-1].Count = 1
					kinds[len(g.Nodes)-1] = s.kind
					g.Edges = append(g.Edges, dag.Edge{From: from, To: to, Kind: kind})
					continue
				}
				to := id(s)
				g.Edges = append(g.Edges, dag.Edge{From: from, To: to, Kind: kind})
				stack = append(stack, s)
			}
		}
		succ(n.edges().children, dag.Child)
		succ(n.edges().followOns, dag.FollowOn)
		succ(n.edges().services, dag.Service)
	}
	// A collapsed group is labelled by its type, not by its first job.
	for i, k := range kinds {
		if g.Nodes[i].Count > 1 {
			g.Nodes[i].Label = k
		}
	}
	return g
}
