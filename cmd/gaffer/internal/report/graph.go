package report

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/gafferhq/gaffer/internal/dag"
	"github.com/gafferhq/gaffer/jobstore"
)

// WriteGraph draws the job graph of the workflow stored at storePath in
// format "dot" or "mermaid". Edges come from the predecessors the
// attempt records name and from the stored jobs' successors (which tell
// children, dashed follow-ons and dotted services apart). Jobs of one
// type with the same predecessors and no successors of their own (a
// fan-out's leaves) are drawn as one node with a count.
func WriteGraph(ctx context.Context, storePath, format string, w io.Writer) error {
	if format != "dot" && format != "mermaid" {
		return fmt.Errorf("graph format %q: want dot or mermaid", format)
	}
	d, err := load(ctx, storePath)
	if err != nil {
		return err
	}
	return dag.Write(w, d.graph(), format)
}

func (d *data) graph() *dag.Graph {
	n := len(d.jobs)
	hasSucc := make([]bool, n)
	for i := range d.jobs {
		for _, p := range d.jobs[i].preds {
			if k := d.index(p); k >= 0 {
				hasSucc[k] = true
			}
		}
		if len(d.jobs[i].children)+len(d.jobs[i].followOns)+len(d.jobs[i].services) > 0 && d.jobs[i].state != 0 {
			hasSucc[i] = true
		}
	}
	// The drawn node of each job: a job's own, or its group's.
	nodeOf := make([]int32, n)
	g := &dag.Graph{}
	groups := map[string]int32{}
	var key strings.Builder
	for i := range d.jobs {
		j := &d.jobs[i]
		if !hasSucc[i] && len(j.preds) > 0 {
			key.Reset()
			key.WriteString(strconv.Itoa(int(j.kind)))
			for _, p := range j.preds {
				key.WriteByte(',')
				key.WriteString(strconv.FormatUint(uint64(p), 10))
			}
			if gi, ok := groups[key.String()]; ok {
				g.Nodes[gi].Count++
				g.Nodes[gi].Failed = g.Nodes[gi].Failed || j.failed
				nodeOf[i] = gi
				continue
			}
			groups[key.String()] = int32(len(g.Nodes))
		}
		nodeOf[i] = int32(len(g.Nodes))
		g.Nodes = append(g.Nodes, dag.Node{ID: "j" + strconv.FormatUint(uint64(j.id), 10), Count: 1,
			Label: jobstore.DisplayName(j.name, d.kinds[j.kind], j.id.String()), Failed: j.failed})
	}
	for i := range g.Nodes {
		if g.Nodes[i].Count > 1 {
			// Label a group by its type (the first job's kind).
			g.Nodes[i].ID = "g" + g.Nodes[i].ID[1:]
		}
	}
	for i := range d.jobs {
		if g.Nodes[nodeOf[i]].Count > 1 {
			g.Nodes[nodeOf[i]].Label = d.kinds[d.jobs[i].kind]
		}
	}
	type edge struct{ from, to int32 }
	seen := map[edge]bool{}
	for i := range d.jobs {
		j := &d.jobs[i]
		to := nodeOf[i]
		for _, p := range j.preds {
			k := d.index(p)
			if k < 0 {
				continue
			}
			e := edge{nodeOf[k], to}
			if seen[e] {
				continue
			}
			seen[e] = true
			kind := dag.Pred
			pj := &d.jobs[k]
			switch {
			case pj.children.Contains(j.id):
				kind = dag.Child
			case pj.followOns.Contains(j.id):
				kind = dag.FollowOn
			}
			g.Edges = append(g.Edges, dag.Edge{From: g.Nodes[e.from].ID, To: g.Nodes[e.to].ID, Kind: kind})
		}
		for s := range j.services.All() {
			if k := d.index(s); k >= 0 {
				g.Edges = append(g.Edges, dag.Edge{From: g.Nodes[to].ID, To: g.Nodes[nodeOf[k]].ID, Kind: dag.Service})
			}
		}
	}
	return g
}
