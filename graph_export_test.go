package gaffer_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/gafferhq/gaffer"
)

var (
	gxLeaf = gaffer.MustRegister("graphexport.leaf", func(ctx context.Context, jc *gaffer.JobContext, i int) (int, error) { return i, nil })
	gxRoot = gaffer.MustRegister("graphexport.root", func(ctx context.Context, jc *gaffer.JobContext, n int) (int, error) { return n, nil })
)

func TestWriteGraphBeforeRun(t *testing.T) {
	root := gxRoot.New(1000)
	for i := range 1000 {
		root.AddChild(gxLeaf.New(i))
	}
	sum := gxRoot.New(0)
	root.AddFollowOn(sum)
	for _, format := range []string{"dot", "mermaid"} {
		var b bytes.Buffer
		if err := gaffer.WriteGraph(&b, root, format); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		if !strings.Contains(out, "graphexport.leaf ×1000") {
			t.Errorf("%s: leaves not collapsed:\n%s", format, out)
		}
		if n := strings.Count(out, "\n"); n > 10 {
			t.Errorf("%s: %d lines, want a few:\n%s", format, n, out)
		}
	}
	if err := gaffer.WriteGraph(&bytes.Buffer{}, root, "svg"); err == nil {
		t.Error("format svg: no error")
	}
	// The export does not seal: the graph still runs.
	l, _ := newLeader(t, testOpts{})
	if _, err := l.Run(context.Background(), root); err != nil {
		t.Fatalf("run after export: %v", err)
	}
}
