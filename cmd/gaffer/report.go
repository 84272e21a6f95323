package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/gafferhq/gaffer/cmd/gaffer/internal/report"
)

var reportCmd = &command{
	name: "report", args: "STORE -o FILE",
	summary: "write an HTML report: timeline, figures per job type, failures, critical path",
	help: `
Writes one self-contained HTML file (inline SVG, no scripts, no network
resources: it opens offline and can be mailed) from the store's attempt
records: a timeline of the attempts by node (in time bins when there are
many), per job type the distributions of wall time, CPU and memory,
failures and retries, and the critical path. It reads the store
read-only.`,
	setup: func(fs *flag.FlagSet) func(context.Context, *cli, []string) int {
		out := fs.String("o", "", "the HTML file to write (required)")
		return func(ctx context.Context, c *cli, args []string) int {
			if len(args) != 1 {
				return c.errorf("want one STORE, got %d arguments", len(args))
			}
			if *out == "" {
				return c.errorf("-o FILE is required")
			}
			return writeTo(c, *out, func(w io.Writer) error { return report.WriteHTML(ctx, args[0], w) })
		}
	},
}

var graphCmd = &command{
	name: "graph", args: "STORE [-format dot|mermaid] [-o FILE]",
	summary: "write the workflow's graph as DOT or Mermaid",
	help: `
Writes the stored workflow's job graph, from its attempt records and live
records: jobs of one type with the same predecessors and no successors
(a fan-out's leaves) are one node with a count. Children are solid
edges, follow-ons dashed, services dotted.`,
	setup: func(fs *flag.FlagSet) func(context.Context, *cli, []string) int {
		format := fs.String("format", "dot", "dot or mermaid")
		out := fs.String("o", "", "the file to write (default: standard output)")
		return func(ctx context.Context, c *cli, args []string) int {
			if len(args) != 1 {
				return c.errorf("want one STORE, got %d arguments", len(args))
			}
			return writeTo(c, *out, func(w io.Writer) error { return report.WriteGraph(ctx, args[0], *format, w) })
		}
	},
}

// writeTo runs fn on the file path (standard output when ""), removing
// the file if fn fails.
func writeTo(c *cli, path string, fn func(io.Writer) error) int {
	if path == "" {
		if err := fn(c.stdout); err != nil {
			return c.fail(err)
		}
		return exitOK
	}
	f, err := os.Create(path)
	if err != nil {
		return c.fail(err)
	}
	err = fn(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return c.fail(fmt.Errorf("%s: %w", path, err))
	}
	return exitOK
}
