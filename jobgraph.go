package gaffer

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
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

// fragJob is one job of a fragment. A fan-out's fragment holds a million,
// so what jobs of one type share (made without options) is one fragSpec,
// and what most lack lives behind Links: 48 bytes a job.
type fragJob struct {
	Tmp       int64
	Input     json.RawMessage
	*fragSpec // never nil
	Links     *fragLinks
}

type fragSpec struct {
	Kind       string
	Req        *Requirements // nil means defaults
	Retries    int32
	Checkpoint bool
	Service    bool
	Categories []string
	Target     string // RunOn
	MemRetry   *memRetry
}

type fragLinks struct {
	Name      string  `json:"n,omitempty"`
	Children  []int64 `json:"c,omitempty"`
	FollowOns []int64 `json:"f,omitempty"`
	// Services, of a client: all of them, parents before child services.
	// ParentSvc, of a child service: the service that starts first.
	Services  []int64         `json:"s,omitempty"`
	ParentSvc int64           `json:"ps,omitempty"`
	ReqFrom   json.RawMessage `json:"-"` // reqPromises, encoded; on the wire as fragWire.ReqFrom
}

// fragWire is a fragJob as a worker sends it: flat, one object a job.
type fragWire struct {
	Tmp        int64           `json:"t"`
	Kind       string          `json:"k"`
	Input      json.RawMessage `json:"i"`
	Req        *Requirements   `json:"r,omitempty"`
	Retries    int32           `json:"rt"`
	Checkpoint bool            `json:"cp,omitempty"`
	Service    bool            `json:"sv,omitempty"`
	Categories []string        `json:"cat,omitempty"`
	Target     string          `json:"bt,omitempty"`
	ReqFrom    json.RawMessage `json:"rf,omitempty"`
	MemRetry   *memRetry       `json:"mr,omitempty"`
	Links      *fragLinks      `json:"l,omitempty"`
}

func (f fragJob) MarshalJSON() ([]byte, error) {
	w := fragWire{Tmp: f.Tmp, Input: f.Input, ReqFrom: f.reqFrom(), Links: f.Links}
	if s := f.fragSpec; s != nil {
		w.Kind, w.Req, w.Retries, w.Checkpoint, w.Service = s.Kind, s.Req, s.Retries, s.Checkpoint, s.Service
		w.Categories, w.Target, w.MemRetry = s.Categories, s.Target, s.MemRetry
	}
	if w.Links != nil && w.Links.Name == "" && len(w.Links.Children)+len(w.Links.FollowOns)+len(w.Links.Services) == 0 && w.Links.ParentSvc == 0 {
		w.Links = nil // only ReqFrom, which goes flat
	}
	return json.Marshal(w)
}

func (f *fragJob) UnmarshalJSON(b []byte) error {
	var w fragWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*f = fragJob{Tmp: w.Tmp, Input: w.Input, Links: w.Links, fragSpec: &fragSpec{
		Kind: w.Kind, Req: w.Req, Retries: w.Retries, Checkpoint: w.Checkpoint, Service: w.Service,
		Categories: w.Categories, Target: w.Target, MemRetry: w.MemRetry,
	}}
	if len(w.ReqFrom) > 0 {
		if f.Links == nil {
			f.Links = &fragLinks{}
		}
		f.Links.ReqFrom = w.ReqFrom
	}
	return nil
}

func (f *fragJob) reqFrom() json.RawMessage {
	if f.Links == nil {
		return nil
	}
	return f.Links.ReqFrom
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
	if len(order) >= hugeFragment {
		// The body that made them has returned: what it kept to build
		// them (its handles, promises, lists) is garbage as big as the
		// fragment about to be built. Collect it first, so that the heap
		// does not grow to twice both.
		debug.FreeOSMemory()
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
		for p := range n.eachPred {
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
		if n.nodeSpec.frag == nil {
			n.nodeSpec.frag = &fragSpec{
				Kind: n.kind, Req: shareReq(shared, *n.req), Retries: n.retries, Checkpoint: n.checkpoint, Service: n.service,
				Categories: n.categories, Target: n.target, MemRetry: n.memRetry,
			}
		}
		fj := fragJob{Tmp: n.tmp, Input: n.input, fragSpec: n.nodeSpec.frag}
		var links fragLinks
		if n.edges().reqFrom != nil {
			b, err := json.Marshal(n.edges().reqFrom)
			if err != nil {
				return nil, fmt.Errorf("job %s: requirements from promises: %w", n.display(), err)
			}
			links.ReqFrom = b
		}
		if !n.service {
			links.Services = tmps(serviceTree(n))
		}
		if n.service && n.edges().svcOwner != nil && n.edges().svcOwner.service {
			links.ParentSvc = n.edges().svcOwner.tmp
		}
		links.Name = n.name
		if e := n.edges(); len(e.children) > 0 || len(e.followOns) > 0 {
			links.Children, links.FollowOns = tmps(e.children), tmps(e.followOns)
		}
		if links.Name != "" || len(links.Children)+len(links.FollowOns)+len(links.Services) > 0 || links.ParentSvc != 0 || links.ReqFrom != nil {
			fj.Links = &links
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
	idx, err := newPosIndex(f.Jobs)
	if err != nil {
		return err
	}
	// Node p's graph positions: job i of the fragment is i+1 and the
	// running job, if any, is 0.
	n := len(f.Jobs) + 1
	preds := make([]int32, n)
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
	// The edges as positions, compressed: a fan-out of a million would
	// otherwise be a million small slices. seenBy marks a successor with
	// the last job (plus one) that listed it, to catch an edge given twice
	// without a set per job.
	edges := &posEdges{off: make([]int32, 0, 2*n+1)}
	edges.off = append(edges.off, 0)
	seenBy := make([]int32, n)
	for p := range n {
		cs, fs := succ(p)
		if p == 0 && parentName == "" {
			cs, fs = nil, nil
		}
		for _, list := range [2][]int64{cs, fs} {
			for _, t := range list {
				i, ok := idx.pos(t)
				if !ok {
					return &GraphError{Problem: fmt.Sprintf("successor #%d is not part of the graph", -t), Jobs: []string{name(p)}}
				}
				if i+1 == p {
					return &GraphError{Problem: "a job cannot be its own successor", Jobs: []string{name(p)}}
				}
				if seenBy[i+1] == int32(p)+1 {
					return &GraphError{Problem: "successor added twice", Jobs: []string{name(p), name(i + 1)}}
				}
				seenBy[i+1] = int32(p) + 1
				edges.to = append(edges.to, int32(i+1))
				preds[i+1]++
			}
			edges.off = append(edges.off, int32(len(edges.to)))
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
	if cyc := findCycle(n, edges); cyc != nil {
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
func (f *fragment) validateServices(idx *posIndex, preds []int32, name func(int) string) error {
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
			i, ok := idx.pos(t)
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

func checkInputRefs(j *fragJob, idx *posIndex) error {
	if !hasPromises(j.Input) {
		return nil
	}
	_, err := mapPlaceholders(j.Input, func(ph placeholder) ([]byte, error) {
		if ph.Job < 0 {
			if _, ok := idx.pos(ph.Job); !ok {
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

// posIndex finds a fragment's job by temporary number: dense, as
// newTmpIndex, when the numbers are (jobs made one after another).
type posIndex struct{ tmpIndex }

// newPosIndex indexes jobs, refusing a number that is not temporary or
// is listed twice.
func newPosIndex(jobs []fragJob) (*posIndex, error) {
	x := &posIndex{}
	if len(jobs) == 0 {
		return x, nil
	}
	lo, hi := jobs[0].Tmp, jobs[0].Tmp
	for i := range jobs {
		if jobs[i].Tmp >= 0 {
			return nil, &GraphError{Problem: "job has a non-temporary number", Jobs: []string{jobs[i].display()}}
		}
		lo, hi = min(lo, jobs[i].Tmp), max(hi, jobs[i].Tmp)
	}
	if span := hi - lo + 1; span <= 2*int64(len(jobs))+16 {
		x.lo, x.dense = lo, make([]JobID, span)
	} else {
		x.m = make(map[int64]JobID, len(jobs))
	}
	for i := range jobs {
		if _, dup := x.lookup(jobs[i].Tmp); dup {
			return nil, &GraphError{Problem: "job listed twice", Jobs: []string{jobs[i].display()}}
		}
		if x.m != nil {
			x.m[jobs[i].Tmp] = JobID(i + 1)
		} else {
			x.dense[jobs[i].Tmp-lo] = JobID(i + 1)
		}
	}
	return x, nil
}

// pos returns the place in the fragment of the job numbered tmp.
func (x *posIndex) pos(tmp int64) (int, bool) {
	p, ok := x.lookup(tmp)
	return int(p) - 1, ok
}

// posEdges are a fragment's edges by position: the children of p are
// to[off[2p]:off[2p+1]], its follow-ons to[off[2p+1]:off[2p+2]].
type posEdges struct{ off, to []int32 }

func (e *posEdges) children(p int) []int32  { return e.to[e.off[2*p]:e.off[2*p+1]] }
func (e *posEdges) followOns(p int) []int32 { return e.to[e.off[2*p+1]:e.off[2*p+2]] }

// waits is the graph of waits (see findCycle), compressed: the events
// that wait for event v are to[off[v]:off[v+1]].
type waits struct{ off, to []int32 }

func (w *waits) out(v int) []int32 { return w.to[w.off[v]:w.off[v+1]] }

// waitGraph is the graph of waits of n jobs with edges (see findCycle).
func waitGraph(n int, edges *posEdges) *waits {
	ev := func(p, k int) int { return 3*p + k }
	w := &waits{off: make([]int32, 3*n+1)}
	deg := w.off[1:] // out-degrees first, then the running ends
	for p := range n {
		deg[ev(p, evStart)] += 1 + int32(len(edges.children(p)))
		deg[ev(p, evMid)] += 1 + int32(len(edges.followOns(p)))
		for _, c := range edges.children(p) {
			deg[ev(int(c), evEnd)]++
		}
		for _, f := range edges.followOns(p) {
			deg[ev(int(f), evEnd)]++
		}
	}
	for v := 1; v < len(w.off); v++ {
		w.off[v] += w.off[v-1]
	}
	w.to = make([]int32, w.off[len(w.off)-1])
	next := slices.Clone(w.off[:3*n])
	add := func(from, to int) { w.to[next[from]] = int32(to); next[from]++ }
	for p := range n {
		add(ev(p, evStart), ev(p, evMid))
		add(ev(p, evMid), ev(p, evEnd))
		for _, c := range edges.children(p) {
			add(ev(p, evStart), ev(int(c), evStart))
			add(ev(int(c), evEnd), ev(p, evMid))
		}
		for _, f := range edges.followOns(p) {
			add(ev(p, evMid), ev(int(f), evStart))
			add(ev(int(f), evEnd), ev(p, evEnd))
		}
	}
	return w
}

// runsBefore reports whether job p's body has run whenever job q starts:
// a path of waits leads from p's start to q's start (every wait out of
// p's start comes after its body).
func runsBefore(w *waits, p, q int) bool {
	from, to := int32(3*p+evStart), int32(3*q+evStart)
	seen := make([]bool, len(w.off)-1)
	stack := slices.Clone(w.out(int(from)))
	for len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if v == to {
			return true
		}
		if !seen[v] {
			seen[v] = true
			stack = append(stack, w.out(int(v))...)
		}
	}
	return false
}

func findCycle(n int, edges *posEdges) []int {
	w := waitGraph(n, edges)
	color := make([]uint8, 3*n) // 0 new, 1 on stack, 2 done
	parent := make([]int32, 3*n)
	type frame struct{ v, next int32 }
	var stack []frame
	for s := range 3 * n {
		if color[s] != 0 {
			continue
		}
		stack = append(stack[:0], frame{int32(s), 0})
		color[s] = 1
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			out := w.out(int(top.v))
			if int(top.next) == len(out) {
				color[top.v] = 2
				stack = stack[:len(stack)-1]
				continue
			}
			v := out[top.next]
			top.next++
			switch color[v] {
			case 0:
				color[v] = 1
				parent[v] = top.v
				stack = append(stack, frame{v, 0})
			case 1:
				// Back edge top.v → v: the cycle is v … top.v.
				var jobs []int
				for u := top.v; ; u = parent[u] {
					if p := int(u / 3); len(jobs) == 0 || jobs[len(jobs)-1] != p {
						jobs = append(jobs, p)
					}
					if u == v {
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
func (f *fragment) checkReqRefs(idx *posIndex, edges *posEdges, name func(int) string) error {
	var out *waits
	for i := range f.Jobs {
		j := &f.Jobs[i]
		if len(j.reqFrom()) == 0 {
			continue
		}
		var bad error
		_, err := mapPlaceholders(j.reqFrom(), func(ph placeholder) ([]byte, error) {
			if ph.Job >= 0 || bad != nil {
				return []byte("0"), nil
			}
			k, ok := idx.pos(ph.Job)
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
