package gaffer

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/gafferhq/gaffer/jobstore"
)

// A fragment is a piece of job graph on its way to the store: the jobs a
// running job made (or the workflow's initial graph), with edges between
// them named by temporary numbers. It is what a worker sends back to the
// leader, so it is plain data.
type fragment struct {
	Jobs []fragJob `json:"jobs"`
	// Children and FollowOns are the running job's new successors. For a
	// workflow's first graph they are empty and Jobs[0] is the root.
	Children  []int64 `json:"children,omitempty"`
	FollowOns []int64 `json:"follow_ons,omitempty"`
	// Services are the running job's new services, parents first.
	Services []int64 `json:"services,omitempty"`
}

type fragJob struct {
	Tmp        int64           `json:"t"`
	Kind       string          `json:"k"`
	Input      json.RawMessage `json:"i"`
	Req        *Requirements   `json:"r,omitempty"` // shared between jobs that ask alike; nil means defaults
	Retries    int32           `json:"rt"`
	Checkpoint bool            `json:"cp,omitempty"`
	Service    bool            `json:"sv,omitempty"`
	Categories []string        `json:"cat,omitempty"`
	Target     string          `json:"bt,omitempty"` // RunOn
	ReqFrom    json.RawMessage `json:"rf,omitempty"` // reqPromises, encoded
	MemRetry   *memRetry       `json:"mr,omitempty"`
	// Most jobs of a big fragment are leaves with no name: what they
	// lack lives behind a pointer, nil for them. (A named field, not an
	// embedded one: encoding/json cannot fill an embedded pointer to an
	// unexported type.)
	Links *fragLinks `json:"l,omitempty"`
}

type fragLinks struct {
	Name      string  `json:"n,omitempty"`
	Children  []int64 `json:"c,omitempty"`
	FollowOns []int64 `json:"f,omitempty"`
	// Services, of a client: all of them, parents before child services.
	// ParentSvc, of a child service: the service that starts first.
	Services  []int64 `json:"s,omitempty"`
	ParentSvc int64   `json:"ps,omitempty"`
}

func (f *fragJob) services() []int64 {
	if f.Links == nil {
		return nil
	}
	return f.Links.Services
}

func (f *fragJob) parentSvc() int64 {
	if f.Links == nil {
		return 0
	}
	return f.Links.ParentSvc
}

func (f *fragJob) name() string {
	if f.Links == nil {
		return ""
	}
	return f.Links.Name
}

func (f *fragJob) children() []int64 {
	if f.Links == nil {
		return nil
	}
	return f.Links.Children
}

func (f *fragJob) followOns() []int64 {
	if f.Links == nil {
		return nil
	}
	return f.Links.FollowOns
}

func (f *fragJob) display() string { return jobstore.DisplayName(f.name(), f.Kind, newNumber(f.Tmp)) }

func tmps(ns []*node) []int64 {
	out := make([]int64, len(ns))
	for i, n := range ns {
		out[i] = n.tmp
	}
	return out
}

// collectMark numbers collects; graphMu guards it.
var collectMark uint32

// collect gathers every job reachable from starts through successor
// edges into a fragment, sealing them so they cannot be added again.
// parent is the running job (nil for a workflow's first graph). A job
// with a predecessor outside the fragment would never run: it is refused,
// as is any mistake recorded while building.
func collect(parent *node, starts []*node) (*fragment, error) {
	graphMu.Lock()
	defer graphMu.Unlock()
	if parent != nil && parent.mistake() != nil {
		return nil, parent.mistake()
	}
	// Nodes are marked with this collect's number rather than kept in a
	// set: a fan-out's set would hold a million entries.
	collectMark++
	mark := collectMark
	seen := func(n *node) bool { return n.mark == mark }
	var order []*node
	stack := slices.Clone(starts)
	slices.Reverse(stack)
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen(n) {
			continue
		}
		if n.sealed {
			return nil, &GraphError{Problem: "job already submitted; a running job can only add jobs it made", Jobs: []string{n.display()}}
		}
		n.mark = mark
		order = append(order, n)
		for i := len(n.edges().services) - 1; i >= 0; i-- {
			stack = append(stack, n.edges().services[i])
		}
		for i := len(n.edges().followOns) - 1; i >= 0; i-- {
			stack = append(stack, n.edges().followOns[i])
		}
		for i := len(n.edges().children) - 1; i >= 0; i-- {
			stack = append(stack, n.edges().children[i])
		}
	}
	f := &fragment{Jobs: make([]fragJob, 0, len(order))}
	shared := map[reqKey]*Requirements{}
	for _, n := range order {
		if n.mistake() != nil {
			return nil, n.mistake()
		}
		if o := n.edges().svcOwner; o != nil && o != parent && !seen(o) {
			return nil, &GraphError{Problem: "the service's client is not part of the graph", Jobs: []string{o.display(), n.display()}}
		}
		for _, p := range n.preds {
			if p != parent && !seen(p) {
				return nil, &GraphError{
					Problem: "more than one root: a predecessor is not reachable from the root",
					Jobs:    []string{p.display(), n.display()},
				}
			}
		}
	}
	for _, n := range order {
		n.sealed = true
		fj := fragJob{
			Tmp: n.tmp, Kind: n.kind, Input: n.input, Req: shareReq(shared, *n.req),
			Retries: n.retries, Checkpoint: n.checkpoint, Service: n.service, Categories: n.categories, Target: n.target,
			MemRetry: n.memRetry,
		}
		if n.edges().reqFrom != nil {
			b, err := json.Marshal(n.edges().reqFrom)
			if err != nil {
				return nil, fmt.Errorf("job %s: requirements from promises: %w", n.display(), err)
			}
			fj.ReqFrom = b
		}
		var svcs []int64
		if !n.service {
			svcs = tmps(serviceTree(n))
		}
		var psvc int64
		if n.service && n.edges().svcOwner != nil && n.edges().svcOwner.service {
			psvc = n.edges().svcOwner.tmp
		}
		if n.name != "" || len(n.edges().children) > 0 || len(n.edges().followOns) > 0 || len(svcs) > 0 || psvc != 0 {
			fj.Links = &fragLinks{Name: n.name, Children: tmps(n.edges().children), FollowOns: tmps(n.edges().followOns), Services: svcs, ParentSvc: psvc}
		}
		f.Jobs = append(f.Jobs, fj)
	}
	if parent != nil {
		f.Children, f.FollowOns = tmps(parent.edges().children), tmps(parent.edges().followOns)
		f.Services = tmps(serviceTree(parent))
	}
	return f, nil
}

// serviceTree lists a client's services and their child services,
// parents first.
func serviceTree(client *node) []*node {
	if len(client.edges().services) == 0 {
		return nil
	}
	out := slices.Clone(client.edges().services)
	for i := 0; i < len(out); i++ {
		out = append(out, out[i].edges().services...)
	}
	return out
}

// validate checks a fragment as the leader receives it, trusting nothing:
// references resolve, no job is its own successor or a successor twice,
// exactly one root (for a first graph), every promise points into the
// fragment or at a stored job, and no cycle through child and follow-on
// edges, counting the waits follow-ons imply. parentName names the running
// job ("" for a first graph).
func (f *fragment) validate(parentName string) error {
	if len(f.Jobs) == 0 && parentName == "" {
		return &GraphError{Problem: "the graph has no jobs", Jobs: []string{"(none)"}}
	}
	idx := make(map[int64]int, len(f.Jobs))
	for i := range f.Jobs {
		j := &f.Jobs[i]
		if j.Tmp >= 0 {
			return &GraphError{Problem: "job has a non-temporary number", Jobs: []string{j.display()}}
		}
		if _, dup := idx[j.Tmp]; dup {
			return &GraphError{Problem: "job listed twice", Jobs: []string{j.display()}}
		}
		idx[j.Tmp] = i
	}
	// Node p's graph positions: job i of the fragment is i+1 and the
	// running job, if any, is 0.
	n := len(f.Jobs) + 1
	preds := make([]int, n)
	name := func(p int) string {
		if p == 0 {
			return parentName
		}
		return f.Jobs[p-1].display()
	}
	succ := func(p int) (children, followOns []int64) {
		if p == 0 {
			return f.Children, f.FollowOns
		}
		return f.Jobs[p-1].children(), f.Jobs[p-1].followOns()
	}
	edges := make([][2][]int, n) // [children, followOns] as positions
	for p := range n {
		if p == 0 && parentName == "" {
			continue
		}
		cs, fs := succ(p)
		seen := map[int64]bool{}
		for k, list := range [2][]int64{cs, fs} {
			for _, t := range list {
				i, ok := idx[t]
				if !ok {
					return &GraphError{Problem: fmt.Sprintf("successor #%d is not part of the graph", -t), Jobs: []string{name(p)}}
				}
				if i+1 == p {
					return &GraphError{Problem: "a job cannot be its own successor", Jobs: []string{name(p)}}
				}
				if seen[t] {
					return &GraphError{Problem: "successor added twice", Jobs: []string{name(p), name(i + 1)}}
				}
				seen[t] = true
				edges[p][k] = append(edges[p][k], i+1)
				preds[i+1]++
			}
		}
	}
	if err := f.validateServices(idx, preds, name); err != nil {
		return err
	}
	var roots []string
	for p := 1; p < n; p++ {
		if preds[p] == 0 && !f.Jobs[p-1].Service {
			roots = append(roots, name(p))
		}
	}
	if parentName == "" && len(roots) != 1 {
		if len(roots) == 0 {
			return &GraphError{Problem: "no root: every job has a predecessor, so the graph is a cycle", Jobs: []string{name(1)}}
		}
		return &GraphError{Problem: "more than one root", Jobs: roots}
	}
	if parentName != "" && len(roots) > 0 {
		return &GraphError{Problem: "job not reachable from the running job", Jobs: roots}
	}
	for i := range f.Jobs {
		if err := checkInputRefs(&f.Jobs[i], idx); err != nil {
			return err
		}
	}
	if err := f.checkReqRefs(idx, edges, name); err != nil {
		return err
	}
	if cyc := findCycle(n, edges, parentName != ""); cyc != nil {
		names := make([]string, len(cyc))
		for i, p := range cyc {
			names[i] = name(p)
		}
		return &GraphError{Problem: "cycle through child and follow-on edges", Jobs: names}
	}
	return nil
}

// validateServices checks services and checkpoints: every service belongs
// to exactly one client (a job, not a service) and is no one's
// successor; a child service's parent is an earlier service of the same
// client; services have no successors; a checkpoint is a leaf.
func (f *fragment) validateServices(idx map[int64]int, preds []int, name func(int) string) error {
	owner := make(map[int64]int, 0) // service → client position
	lists := [][]int64{f.Services}
	for i := range f.Jobs {
		lists = append(lists, f.Jobs[i].services())
	}
	for p, list := range lists {
		if p > 0 && len(list) > 0 && f.Jobs[p-1].Service {
			return &GraphError{Problem: "a service cannot have services", Jobs: []string{name(p)}}
		}
		for k, t := range list {
			i, ok := idx[t]
			if !ok {
				return &GraphError{Problem: fmt.Sprintf("service #%d is not part of the graph", -t), Jobs: []string{name(p)}}
			}
			sj := &f.Jobs[i]
			if !sj.Service {
				return &GraphError{Problem: "a job listed as a service is not of a service type", Jobs: []string{name(p), name(i + 1)}}
			}
			if q, dup := owner[t]; dup {
				return &GraphError{Problem: "service added twice", Jobs: []string{name(q), name(p), name(i + 1)}}
			}
			owner[t] = p
			if ps := sj.parentSvc(); ps != 0 && !slices.Contains(list[:k], ps) {
				return &GraphError{Problem: "a child service's parent must be an earlier service of the same client", Jobs: []string{name(p), name(i + 1)}}
			}
		}
	}
	for i := range f.Jobs {
		j := &f.Jobs[i]
		leaf := len(j.children()) == 0 && len(j.followOns()) == 0 && len(j.services()) == 0
		switch {
		case j.Service && !leaf:
			return &GraphError{Problem: "a service cannot have successors", Jobs: []string{name(i + 1)}}
		case j.Service && preds[i+1] > 0:
			return &GraphError{Problem: "a service cannot be a successor; add it with AddService", Jobs: []string{name(i + 1)}}
		case j.Service && j.Checkpoint:
			return &GraphError{Problem: "a service cannot be a checkpoint", Jobs: []string{name(i + 1)}}
		case j.Service:
			if _, ok := owner[j.Tmp]; !ok {
				return &GraphError{Problem: "service has no client: add it to a job with AddService", Jobs: []string{name(i + 1)}}
			}
		case j.Checkpoint && !leaf:
			return &GraphError{Problem: "a checkpoint must be a leaf when it is created; it can add successors and services while it runs", Jobs: []string{name(i + 1)}}
		}
	}
	return nil
}

func checkInputRefs(j *fragJob, idx map[int64]int) error {
	if !hasPromises(j.Input) {
		return nil
	}
	_, err := mapPlaceholders(j.Input, func(ph placeholder) ([]byte, error) {
		if ph.Job < 0 {
			if _, ok := idx[ph.Job]; !ok {
				return nil, &GraphError{Problem: fmt.Sprintf("input promises the result of job #%d, which is not part of the graph", -ph.Job), Jobs: []string{j.display()}}
			}
		}
		return []byte("null"), nil
	})
	if err != nil {
		var ge *GraphError
		if asGraphError(err, &ge) {
			return ge
		}
		return fmt.Errorf("%w: job %s: %w", ErrBadInput, j.display(), err)
	}
	return nil
}

func asGraphError(err error, out **GraphError) bool { return errors.As(err, out) }

// findCycle looks for a cycle in the graph of waits. Each job p becomes
// three events: start (its body may run), mid (its children's subtrees
// are done) and end (its whole subtree is done):
//
//	start(p) → mid(p) → end(p)
//	child c:     start(p) → start(c), end(c) → mid(p)
//	follow-on f: mid(p) → start(f),   end(f) → end(p)
//
// A cycle among these events is a deadlock, and this graph has 3 events
// per job and 2 edges per job edge, so the check is linear. (Toil adds an
// edge from every job below a job's children to each of its follow-ons,
// which is quadratic.) It returns the jobs on the cycle, or nil.
// The events of job p in the graph of waits: its start (its body runs),
// mid (its children's subtrees are done) and end (its subtree is done).
const (
	evStart = iota
	evMid
	evEnd
)

// waitGraph is the graph of waits of n jobs with edges (see findCycle):
// out[e] lists the events that wait for event e.
func waitGraph(n int, edges [][2][]int) [][]int {
	ev := func(p, k int) int { return 3*p + k }
	out := make([][]int, 3*n)
	for p := range n {
		out[ev(p, evStart)] = append(out[ev(p, evStart)], ev(p, evMid))
		out[ev(p, evMid)] = append(out[ev(p, evMid)], ev(p, evEnd))
		for _, c := range edges[p][0] {
			out[ev(p, evStart)] = append(out[ev(p, evStart)], ev(c, evStart))
			out[ev(c, evEnd)] = append(out[ev(c, evEnd)], ev(p, evMid))
		}
		for _, f := range edges[p][1] {
			out[ev(p, evMid)] = append(out[ev(p, evMid)], ev(f, evStart))
			out[ev(f, evEnd)] = append(out[ev(f, evEnd)], ev(p, evEnd))
		}
	}
	return out
}

// runsBefore reports whether job p's body has run whenever job q starts:
// a path of waits leads from p's start to q's start (every wait out of
// p's start comes after its body).
func runsBefore(out [][]int, p, q int) bool {
	from, to := 3*p+evStart, 3*q+evStart
	seen := make([]bool, len(out))
	stack := slices.Clone(out[from])
	for len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if v == to {
			return true
		}
		if !seen[v] {
			seen[v] = true
			stack = append(stack, out[v]...)
		}
	}
	return false
}

func findCycle(n int, edges [][2][]int, hasParent bool) []int {
	out := waitGraph(n, edges)
	color := make([]uint8, 3*n) // 0 new, 1 on stack, 2 done
	parent := make([]int, 3*n)
	type frame struct{ v, next int }
	for s := range 3 * n {
		if color[s] != 0 {
			continue
		}
		stack := []frame{{s, 0}}
		color[s] = 1
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			if top.next == len(out[top.v]) {
				color[top.v] = 2
				stack = stack[:len(stack)-1]
				continue
			}
			w := out[top.v][top.next]
			top.next++
			switch color[w] {
			case 0:
				color[w] = 1
				parent[w] = top.v
				stack = append(stack, frame{w, 0})
			case 1:
				// Back edge top.v → w: the cycle is w … top.v.
				var jobs []int
				for v := top.v; ; v = parent[v] {
					if p := v / 3; len(jobs) == 0 || jobs[len(jobs)-1] != p {
						jobs = append(jobs, p)
					}
					if v == w {
						break
					}
				}
				slices.Reverse(jobs)
				return slices.Compact(jobs)
			}
		}
	}
	return nil
}

// checkReqRefs checks the requirement promises of the fragment's jobs:
// each promises a number from a job that has run whenever the job is
// issued, since requirements are resolved then. A promise of a job of the
// fragment that may not have run by then is refused, naming both jobs. A
// promise of a stored job (the running one, or one before it) is taken
// as it is: it ran before the fragment was made.
func (f *fragment) checkReqRefs(idx map[int64]int, edges [][2][]int, name func(int) string) error {
	var out [][]int
	for i := range f.Jobs {
		j := &f.Jobs[i]
		if len(j.ReqFrom) == 0 {
			continue
		}
		var bad error
		_, err := mapPlaceholders(j.ReqFrom, func(ph placeholder) ([]byte, error) {
			if ph.Job >= 0 || bad != nil {
				return []byte("0"), nil
			}
			k, ok := idx[ph.Job]
			if !ok {
				bad = &GraphError{Problem: fmt.Sprintf("requirements promise the result of job #%d, which is not part of the graph", -ph.Job), Jobs: []string{j.display()}}
				return []byte("0"), nil
			}
			if out == nil {
				out = waitGraph(len(f.Jobs)+1, edges)
			}
			if !runsBefore(out, k+1, i+1) {
				bad = &GraphError{Problem: "requirements promise the result of a job that may not have run when this one is issued: make it a predecessor",
					Jobs: []string{name(i + 1), name(k + 1)}}
			}
			return []byte("0"), nil
		})
		if bad != nil {
			return bad
		}
		if err != nil {
			return fmt.Errorf("%w: job %s: requirements: %w", ErrBadInput, j.display(), err)
		}
	}
	return nil
}
