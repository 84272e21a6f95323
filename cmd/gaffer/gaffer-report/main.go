// Command gaffer-report makes what a person looks at from a job store:
//
//	gaffer-report report STORE -o report.html
//	gaffer-report graph STORE -format dot|mermaid [-o FILE]
//
// The report is one self-contained HTML file (inline SVG, no scripts, no
// network resources). The graph collapses a fan-out's leaves into one
// node with a count. Both read the store read-only, so they work while a
// leader runs.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/gafferhq/gaffer/cmd/gaffer/internal/report"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gaffer-report:", err)
		os.Exit(2)
	}
}

func usage() error {
	return fmt.Errorf("usage: gaffer-report report STORE -o FILE | gaffer-report graph STORE -format dot|mermaid [-o FILE]")
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) < 2 {
		return usage()
	}
	cmd, store := args[0], args[1]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	out := fs.String("o", "", "write here (default: standard output)")
	format := "dot"
	if cmd == "graph" {
		fs.StringVar(&format, "format", "dot", "dot or mermaid")
	}
	if err := fs.Parse(args[2:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usage()
	}
	write := func(fn func(io.Writer) error) error {
		if *out == "" {
			return fn(stdout)
		}
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		if err := fn(f); err != nil {
			f.Close()
			os.Remove(*out)
			return err
		}
		return f.Close()
	}
	switch cmd {
	case "report":
		if *out == "" {
			return fmt.Errorf("report: -o FILE is required")
		}
		return write(func(w io.Writer) error { return report.WriteHTML(ctx, store, w) })
	case "graph":
		return write(func(w io.Writer) error { return report.WriteGraph(ctx, store, format, w) })
	}
	return usage()
}
