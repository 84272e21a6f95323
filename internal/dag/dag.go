// Package dag writes a small job graph as Graphviz DOT or Mermaid. Both
// the graph of a workflow before it runs (package gaffer) and the graph
// of a stored workflow (the report command) are drawn with it.
package dag

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Node is one box of the drawing: one job, or Count jobs collapsed into
// one (a fan-out's leaves).
type Node struct {
	ID    string // unique, made of letters, digits and '_'
	Label string
	Count int // jobs it stands for; 0 or 1 for one job
	// Service marks a service job; Failed a job whose last attempt failed.
	Service, Failed bool
}

// Edge kinds.
const (
	Child    = iota // runs after From's body
	FollowOn        // runs after From and its children's subtrees
	Service         // a service of From
	Pred            // From is a predecessor (which kind of edge is not known)
)

// Edge links two nodes by their IDs.
type Edge struct {
	From, To string
	Kind     int
}

// Graph is what is drawn.
type Graph struct {
	Nodes []Node
	Edges []Edge
}

// Write writes g in format "dot" or "mermaid".
func Write(w io.Writer, g *Graph, format string) error {
	bw := bufio.NewWriter(w)
	switch format {
	case "dot":
		writeDOT(bw, g)
	case "mermaid":
		writeMermaid(bw, g)
	default:
		return fmt.Errorf("graph format %q: want dot or mermaid", format)
	}
	return bw.Flush()
}

func (n *Node) text() string {
	if n.Count > 1 {
		return fmt.Sprintf("%s ×%d", n.Label, n.Count)
	}
	return n.Label
}

func dotQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", "")
	return `"` + r.Replace(s) + `"`
}

func writeDOT(w *bufio.Writer, g *Graph) {
	w.WriteString("digraph gaffer {\n\trankdir=TB;\n\tnode [shape=box, style=rounded, fontname=\"sans-serif\"];\n")
	for i := range g.Nodes {
		n := &g.Nodes[i]
		var attrs []string
		attrs = append(attrs, "label="+dotQuote(n.text()))
		switch {
		case n.Count > 1:
			attrs = append(attrs, `shape=box3d`, `style=""`)
		case n.Service:
			attrs = append(attrs, `shape=ellipse`)
		}
		if n.Failed {
			attrs = append(attrs, `color=red`)
		}
		fmt.Fprintf(w, "\t%s [%s];\n", n.ID, strings.Join(attrs, ", "))
	}
	for _, e := range g.Edges {
		style := ""
		switch e.Kind {
		case FollowOn:
			style = " [style=dashed]"
		case Service:
			style = " [style=dotted, arrowhead=none]"
		}
		fmt.Fprintf(w, "\t%s -> %s%s;\n", e.From, e.To, style)
	}
	w.WriteString("}\n")
}

// mermaidQuote makes s safe inside a quoted Mermaid label.
func mermaidQuote(s string) string {
	r := strings.NewReplacer(`"`, "#quot;", "\n", " ", "\r", "", "<", "#lt;", ">", "#gt;")
	return `"` + r.Replace(s) + `"`
}

func writeMermaid(w *bufio.Writer, g *Graph) {
	w.WriteString("flowchart TD\n")
	for i := range g.Nodes {
		n := &g.Nodes[i]
		open, close := "[", "]"
		switch {
		case n.Count > 1:
			open, close = "[[", "]]"
		case n.Service:
			open, close = "([", "])"
		}
		fmt.Fprintf(w, "\t%s%s%s%s\n", n.ID, open, mermaidQuote(n.text()), close)
		if n.Failed {
			fmt.Fprintf(w, "\tstyle %s stroke:#c00\n", n.ID)
		}
	}
	for _, e := range g.Edges {
		arrow := "-->"
		switch e.Kind {
		case FollowOn:
			arrow = "-.->"
		case Service:
			arrow = "---"
		}
		fmt.Fprintf(w, "\t%s %s %s\n", e.From, arrow, e.To)
	}
}
