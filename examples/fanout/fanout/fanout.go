// Package fanout holds the job types of the fan-out example, so that
// tests and the bench command can run the same workflow.
package fanout

import (
	"context"

	"github.com/gafferhq/gaffer"
)

// Small jobs ask for a tenth of a core, so many run at once.
var small = []gaffer.JobOption{gaffer.Cores(0.1), gaffer.Memory("64Mi"), gaffer.Disk("1Mi")}

// Leaf returns its input.
var Leaf = gaffer.MustRegister("fanout.leaf", func(ctx context.Context, jc *gaffer.JobContext, i int) (int, error) {
	return i, nil
}, small...)

// Sum adds its inputs.
var Sum = gaffer.MustRegister("fanout.sum", func(ctx context.Context, jc *gaffer.JobContext, xs []int) (int, error) {
	total := 0
	for _, x := range xs {
		total += x
	}
	return total, nil
}, small...)

// Root adds n Leaf children and a Sum follow-on that takes all their
// results, and returns the follow-on's value.
var Root = gaffer.MustRegister("fanout.root", func(ctx context.Context, jc *gaffer.JobContext, n int) (int, error) {
	parts := make([]gaffer.Input[int], n)
	for i := range n {
		leaf := Leaf.New(i)
		jc.AddChild(leaf)
		parts[i] = leaf.Result()
	}
	sum := Sum.NewFrom(gaffer.Collect(parts...))
	jc.AddFollowOn(sum)
	return gaffer.Forward(jc, sum.Result())
}, small...)
