package main

import (
	"context"
	"strings"

	"github.com/gafferhq/gaffer"
)

// The chain and grid scenarios' job types. Every process of this binary
// registers them, so worker processes can run them too.

// hop is a chain step's value: how many steps ran, and a payload of
// padBytes, so that the store holds a real value per step.
type hop struct {
	N   int    `json:"n"`
	Pad string `json:"pad"`
}

const padBytes = 1024

var tiny = []gaffer.JobOption{gaffer.Cores(0.1), gaffer.Memory("64Mi"), gaffer.Disk("1Mi")}

// chainStep takes the previous step's value and returns the next.
var chainStep = gaffer.MustRegister("bench.chain.step", func(ctx context.Context, jc *gaffer.JobContext, prev hop) (hop, error) {
	return hop{N: prev.N + 1, Pad: prev.Pad}, nil
}, tiny...)

// chainRoot makes n steps, each a child of the one before and taking its
// value, and returns the last one's value.
var chainRoot = gaffer.MustRegister("bench.chain.root", func(ctx context.Context, jc *gaffer.JobContext, n int) (hop, error) {
	first := chainStep.New(hop{Pad: strings.Repeat("x", padBytes)})
	jc.AddChild(first)
	last := first
	for range n - 1 {
		next := chainStep.NewFrom(last.Result())
		last.AddChild(next)
		last = next
	}
	return gaffer.Forward(jc, last.Result())
}, tiny...)

// gridModulus keeps the grid's values small: each cell counts the paths
// to it from the corner, modulo a prime.
const gridModulus = 1_000_000_007

// gridCell adds its two predecessors' values (or takes its one).
var gridCell = gaffer.MustRegister("bench.grid.cell", func(ctx context.Context, jc *gaffer.JobContext, in []int) (int, error) {
	if len(in) == 0 {
		return 1, nil
	}
	s := 0
	for _, v := range in {
		s = (s + v) % gridModulus
	}
	return s, nil
}, tiny...)

// gridRoot makes an n x n grid of cells: cell (i, j) runs after, and
// takes the values of, cells (i-1, j) and (i, j-1), so each cell but
// those on the first row and column joins two predecessors. It returns
// the far corner's value.
var gridRoot = gaffer.MustRegister("bench.grid.root", func(ctx context.Context, jc *gaffer.JobContext, n int) (int, error) {
	row := make([]*gaffer.Job[int], n) // the row above, then this one
	for i := range n {
		for j := range n {
			var ins []gaffer.Input[int]
			var preds []*gaffer.Job[int]
			if i > 0 {
				preds = append(preds, row[j])
			}
			if j > 0 {
				preds = append(preds, row[j-1])
			}
			for _, p := range preds {
				ins = append(ins, p.Result())
			}
			c := gridCell.NewFrom(gaffer.Collect(ins...))
			if len(preds) == 0 {
				jc.AddChild(c)
			}
			for _, p := range preds {
				p.AddChild(c)
			}
			row[j] = c
		}
	}
	return gaffer.Forward(jc, row[n-1].Result())
}, tiny...)

// gridWant is the far corner's value of an n x n grid.
func gridWant(n int) int {
	row := make([]int, n)
	for i := range n {
		for j := range n {
			switch {
			case i == 0 && j == 0:
				row[j] = 1
			case i == 0:
				row[j] = row[j-1]
			case j > 0:
				row[j] = (row[j] + row[j-1]) % gridModulus
			}
		}
	}
	return row[n-1]
}
