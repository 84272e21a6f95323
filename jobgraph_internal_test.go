package gaffer

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// fj is a fragment job named "jN", numbered -N, with plain input.
func fj(n int64, children, followOns []int64) fragJob {
	return fragJob{Tmp: -n, Input: json.RawMessage(`null`),
		Links: &fragLinks{Name: fmt.Sprintf("j%d", n), Children: negs(children), FollowOns: negs(followOns)}, fragSpec: &fragSpec{Kind: "test.kind", Retries: -1}}
}

// negs turns job numbers into temporary numbers.
func negs(ns []int64) []int64 {
	if ns == nil {
		return nil
	}
	out := make([]int64, len(ns))
	for i, n := range ns {
		out[i] = -n
	}
	return out
}

func nums(ns ...int64) []int64 { return ns }

// jn is how validate names fragment job n.
func jn(n int64) string { return fmt.Sprintf("j%d (new #%d)", n, n) }

func requireGraphError(t *testing.T, err error, problem string, jobs ...string) *GraphError {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, ErrInvalidGraph)
	var ge *GraphError
	require.True(t, errors.As(err, &ge), "want a *GraphError, got %T: %v", err, err)
	require.Contains(t, ge.Problem, problem)
	for _, j := range jobs {
		require.Contains(t, ge.Jobs, j, "the error names %s", j)
		require.Contains(t, err.Error(), j)
	}
	return ge
}

func TestValidateFirstGraph(t *testing.T) {
	cases := []struct {
		name    string
		jobs    []fragJob
		problem string // "" means valid
		names   []string
	}{
		{name: "one job", jobs: []fragJob{fj(1, nil, nil)}},
		{name: "diamond with a follow-on",
			jobs: []fragJob{fj(1, nums(2, 3), nums(5)), fj(2, nums(4), nil), fj(3, nums(4), nil), fj(4, nil, nil), fj(5, nil, nil)}},
		{name: "join of a child's follow-on and another child's child",
			jobs: []fragJob{fj(1, nums(2, 3), nil), fj(2, nil, nums(4)), fj(3, nums(4), nil), fj(4, nil, nil)}},
		{name: "a follow-on below a follow-on's subtree",
			jobs: []fragJob{fj(1, nums(2), nums(3)), fj(2, nil, nil), fj(3, nums(4), nums(5)), fj(4, nil, nil), fj(5, nil, nil)}},
		{name: "follow-on that is also in a child's subtree",
			// 3 is 1's follow-on, so it starts after 2's subtree ends; but
			// it is in that subtree, under 2's follow-on 4.
			jobs:    []fragJob{fj(1, nums(2), nums(3)), fj(2, nil, nums(4)), fj(3, nil, nil), fj(4, nums(3), nil)},
			problem: "cycle", names: []string{jn(1), jn(2), jn(3), jn(4)}},
		{name: "self edge as child",
			jobs:    []fragJob{fj(1, nums(2), nil), fj(2, nums(2), nil)},
			problem: "its own successor", names: []string{jn(2)}},
		{name: "self edge as follow-on",
			jobs:    []fragJob{fj(1, nil, nums(1))},
			problem: "its own successor", names: []string{jn(1)}},
		{name: "duplicate edge, child and follow-on",
			jobs:    []fragJob{fj(1, nums(2), nums(2)), fj(2, nil, nil)},
			problem: "added twice", names: []string{jn(1), jn(2)}},
		{name: "duplicate child edge",
			jobs:    []fragJob{fj(1, nums(2, 2), nil), fj(2, nil, nil)},
			problem: "added twice", names: []string{jn(1), jn(2)}},
		{name: "unknown successor",
			jobs:    []fragJob{fj(1, nums(2, 7), nil), fj(2, nil, nil)},
			problem: "successor #7 is not part of the graph", names: []string{jn(1)}},
		{name: "two roots",
			jobs:    []fragJob{fj(1, nums(3), nil), fj(2, nums(3), nil), fj(3, nil, nil)},
			problem: "more than one root", names: []string{jn(1), jn(2)}},
		{name: "two unconnected jobs",
			jobs:    []fragJob{fj(1, nil, nil), fj(2, nil, nil)},
			problem: "more than one root", names: []string{jn(1), jn(2)}},
		{name: "no root",
			jobs:    []fragJob{fj(1, nums(2), nil), fj(2, nums(1), nil)},
			problem: "no root", names: []string{jn(1)}},
		{name: "cycle through child edges below the root",
			jobs:    []fragJob{fj(1, nums(2), nil), fj(2, nums(3), nil), fj(3, nums(4), nil), fj(4, nums(2), nil)},
			problem: "cycle", names: []string{jn(2), jn(3), jn(4)}},
		{name: "cycle through a follow-on edge",
			jobs:    []fragJob{fj(1, nums(2), nil), fj(2, nums(3), nil), fj(3, nil, nums(2))},
			problem: "cycle", names: []string{jn(2), jn(3)}},
		{name: "follow-on that must wait for itself",
			// 3 starts after 1's children (2) end; 2 starts after 3 reaches it.
			jobs:    []fragJob{fj(1, nums(2), nums(3)), fj(2, nil, nil), fj(3, nums(2), nil)},
			problem: "cycle", names: []string{jn(1), jn(2), jn(3)}},
		{name: "follow-on wait through a grandchild",
			// 4 is under 2, so 1's follow-on 3 starts after 4 ends; but 4
			// is also 3's child, so it starts after 3 does.
			jobs:    []fragJob{fj(1, nums(2), nums(3)), fj(2, nums(4), nil), fj(3, nums(4), nil), fj(4, nil, nil)},
			problem: "cycle", names: []string{jn(1), jn(2), jn(3), jn(4)}},
		{name: "follow-on of a job's follow-on waits for the job: no cycle the other way either",
			// 1's follow-on 2 has child 3, which is also 1's child: 3 must
			// end before 2 starts, and start after 2: a cycle.
			jobs:    []fragJob{fj(1, nums(3), nums(2)), fj(2, nums(3), nil), fj(3, nil, nil)},
			problem: "cycle", names: []string{jn(1), jn(2), jn(3)}},
		{name: "job number not temporary",
			jobs:    []fragJob{{Tmp: 4, Input: json.RawMessage(`1`), fragSpec: &fragSpec{Kind: "k"}}},
			problem: "non-temporary"},
		{name: "job listed twice",
			jobs:    []fragJob{fj(1, nums(2), nil), fj(2, nil, nil), fj(2, nil, nil)},
			problem: "listed twice", names: []string{jn(2)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := &fragment{Jobs: c.jobs}
			err := f.validate("")
			if c.problem == "" {
				require.NoError(t, err)
				return
			}
			requireGraphError(t, err, c.problem, c.names...)
		})
	}
}

func TestValidateRunningJobsFragment(t *testing.T) {
	const parent = "parent (j1)"
	cases := []struct {
		name                string
		children, followOns []int64
		jobs                []fragJob
		problem             string
		names               []string
	}{
		{name: "children and a follow-on",
			children: nums(1, 2), followOns: nums(3),
			jobs: []fragJob{fj(1, nil, nil), fj(2, nil, nil), fj(3, nil, nil)}},
		{name: "a new job the running job does not reach",
			children: nums(1),
			jobs:     []fragJob{fj(1, nil, nil), fj(2, nil, nil)},
			problem:  "not reachable from the running job", names: []string{jn(2)}},
		{name: "the parent's successor is unknown",
			children: nums(1, 5),
			jobs:     []fragJob{fj(1, nil, nil)},
			problem:  "successor #5 is not part of the graph", names: []string{parent}},
		{name: "the parent adds a job twice",
			children: nums(1), followOns: nums(1),
			jobs:    []fragJob{fj(1, nil, nil)},
			problem: "added twice", names: []string{parent, jn(1)}},
		{name: "cycle below the parent, every job reached",
			children: nums(1),
			jobs:     []fragJob{fj(1, nums(2), nil), fj(2, nums(1), nil)},
			problem:  "cycle", names: []string{jn(1), jn(2)}},
		{name: "parent's follow-on is a child's child",
			children: nums(1), followOns: nums(2),
			jobs:    []fragJob{fj(1, nums(2), nil), fj(2, nil, nil)},
			problem: "cycle", names: []string{jn(1), jn(2), parent}},
		{name: "cycle through follow-ons only",
			followOns: nums(1),
			jobs:      []fragJob{fj(1, nil, nums(2)), fj(2, nil, nums(1))},
			problem:   "cycle", names: []string{jn(1), jn(2)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := &fragment{Jobs: c.jobs, Children: negs(c.children), FollowOns: negs(c.followOns)}
			err := f.validate(parent)
			if c.problem == "" {
				require.NoError(t, err)
				return
			}
			requireGraphError(t, err, c.problem, c.names...)
		})
	}
}

func TestValidateInputPromises(t *testing.T) {
	withInput := func(j fragJob, in string) fragJob { j.Input = json.RawMessage(in); return j }
	ph := func(job int64) string { return string(placeholderJSON(placeholder{Job: job})) }

	// Promises of jobs in the fragment (by temporary number) and of stored
	// jobs (by ID) are fine, wherever they sit in the input.
	f := &fragment{Jobs: []fragJob{
		fj(1, nums(2), nums(3)),
		fj(2, nil, nil),
		withInput(fj(3, nil, nil), `{"a":[`+ph(-2)+`,`+ph(-1)+`],"stored":`+ph(17)+`}`),
	}}
	require.NoError(t, f.validate(""))

	// A promise of a job outside the fragment is refused, naming the
	// job whose input holds it.
	f.Jobs[2] = withInput(fj(3, nil, nil), `[`+ph(-2)+`,`+ph(-44)+`]`)
	requireGraphError(t, f.validate(""), "job #44, which is not part of the graph", jn(3))

	// The same with a parent.
	g := &fragment{Children: negs(nums(1)), Jobs: []fragJob{withInput(fj(1, nil, nil), ph(-2))}}
	requireGraphError(t, g.validate("parent (j1)"), "job #2", jn(1))

	// A malformed placeholder is bad input, not a graph error.
	f.Jobs[2] = withInput(fj(3, nil, nil), `{"$gaffer.promise":{"job":"x"}}`)
	err := f.validate("")
	require.ErrorIs(t, err, ErrBadInput)
	require.Contains(t, err.Error(), jn(3))

	// Marker text in a string is data.
	f.Jobs[2] = withInput(fj(3, nil, nil), `{"note":"{\"$gaffer.promise\":{\"job\":-99}}"}`)
	require.NoError(t, f.validate(""))
}

// A fan-out of 100,000 children with a follow-on that collects all their
// results, as a running job sends it, and as a first graph.
func TestValidateLargeFanOut(t *testing.T) {
	const n = 100_000
	jobs := make([]fragJob, 0, n+1)
	var in strings.Builder
	in.WriteByte('[')
	children := make([]int64, n)
	for i := range n {
		jobs = append(jobs, fragJob{Tmp: int64(-1 - i), Input: json.RawMessage(`1`), fragSpec: &fragSpec{Kind: "leaf", Retries: -1}})
		children[i] = int64(-1 - i)
		if i > 0 {
			in.WriteByte(',')
		}
		in.Write(placeholderJSON(placeholder{Job: int64(-1 - i)}))
	}
	in.WriteByte(']')
	sum := fragJob{Tmp: -n - 1, Input: json.RawMessage(in.String()), fragSpec: &fragSpec{Kind: "sum", Retries: -1}}
	f := &fragment{Jobs: append(jobs, sum), Children: children, FollowOns: []int64{-n - 1}}
	require.NoError(t, f.validate("root (j1)"))

	// As a first graph: a root with the leaves as children and the sum as
	// follow-on.
	root := fragJob{Tmp: -n - 2, Input: json.RawMessage(`0`), fragSpec: &fragSpec{Kind: "root", Retries: -1}, Links: &fragLinks{Children: children, FollowOns: []int64{-n - 1}}}
	first := &fragment{Jobs: append([]fragJob{root}, f.Jobs...)}
	require.NoError(t, first.validate(""))

	// A long chain is fine too (no recursion to overflow).
	chain := make([]fragJob, n)
	for i := range n {
		chain[i] = fragJob{Tmp: int64(-1 - i), Input: json.RawMessage(`0`), fragSpec: &fragSpec{Kind: "link"}}
		if i+1 < n {
			chain[i].Links = &fragLinks{Children: []int64{int64(-2 - i)}}
		}
	}
	require.NoError(t, (&fragment{Jobs: chain}).validate(""))
	// Closing the chain into a loop back to its second job is a cycle.
	chain[n-1].Links = &fragLinks{Children: []int64{-2}}
	requireGraphError(t, (&fragment{Jobs: chain}).validate(""), "cycle", "link (new #2)", fmt.Sprintf("link (new #%d)", n))
}

// posEdgesOf compresses edges given as [children, follow-ons] by position.
func posEdgesOf(edges [][2][]int) *posEdges {
	e := &posEdges{off: []int32{0}}
	for _, cf := range edges {
		for _, list := range cf {
			for _, s := range list {
				e.to = append(e.to, int32(s))
			}
			e.off = append(e.off, int32(len(e.to)))
		}
	}
	return e
}

func TestFindCycle(t *testing.T) {
	type e = [2][]int
	// no edges
	require.Nil(t, findCycle(3, posEdgesOf(make([][2][]int, 3))))
	// 0 -c-> 1 -c-> 2, 0 -f-> 3
	require.Nil(t, findCycle(4, posEdgesOf([]e{{{1}, {3}}, {{2}, nil}, {nil, nil}, {nil, nil}})))
	// 0 -c-> 1 -c-> 0
	cyc := findCycle(2, posEdgesOf([]e{{{1}, nil}, {{0}, nil}}))
	require.ElementsMatch(t, []int{0, 1}, dedupe(cyc))
	// 1 -f-> 2 -f-> 1, under 0
	cyc = findCycle(3, posEdgesOf([]e{{nil, {1}}, {nil, {2}}, {nil, {1}}}))
	require.ElementsMatch(t, []int{1, 2}, dedupe(cyc))
	// 0 -c-> 1, 0 -f-> 2, 2 -c-> 1: only through waits.
	cyc = findCycle(3, posEdgesOf([]e{{{1}, {2}}, {nil, nil}, {{1}, nil}}))
	require.ElementsMatch(t, []int{0, 1, 2}, dedupe(cyc))
	// The cycle is reported as a path of jobs, each next to the next.
	for i := 1; i < len(cyc); i++ {
		require.NotEqual(t, cyc[i-1], cyc[i], "adjacent repeats are compacted: %v", cyc)
	}
}

func dedupe(xs []int) []int {
	s := slices.Clone(xs)
	slices.Sort(s)
	return slices.Compact(s)
}

// validate trusts nothing it is given; an empty first graph is an error,
// not a crash.
func TestValidateEmptyFirstGraph(t *testing.T) {
	err := (&fragment{}).validate("")
	require.ErrorIs(t, err, ErrInvalidGraph)
}

// A fragment job goes over the wire as one flat object, as it always
// has (a worker's result may be read by a later build of the leader), and
// comes back with the same spec, links and promised requirements.
func TestFragJobWire(t *testing.T) {
	spec := &fragSpec{Kind: "k", Req: &Requirements{Cores: 2}, Retries: 3, Checkpoint: true, Categories: []string{"db"}, Target: "big", MemRetry: &memRetry{Factor: 2}}
	jobs := []fragJob{
		{Tmp: -1, Input: json.RawMessage(`1`), fragSpec: spec},
		{Tmp: -2, Input: json.RawMessage(`2`), fragSpec: spec, Links: &fragLinks{ReqFrom: json.RawMessage(`{"cores":3}`)}},
		{Tmp: -3, Input: json.RawMessage(`3`), fragSpec: &fragSpec{Kind: "s", Service: true}, Links: &fragLinks{Name: "n", Children: []int64{-1}, ReqFrom: json.RawMessage(`{"disk":1}`)}},
	}
	b, err := json.Marshal(fragment{Jobs: jobs})
	require.NoError(t, err)
	require.Contains(t, string(b), `{"t":-2,"k":"k","i":2,"r":{"cores":2},"rt":3,"cp":true,"cat":["db"],"bt":"big","rf":{"cores":3},"mr":{"f":2}}`)
	require.Contains(t, string(b), `"rf":{"disk":1},"l":{"n":"n","c":[-1]}`)
	var back fragment
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, jobs, back.Jobs)
}
