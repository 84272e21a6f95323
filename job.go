package gaffer

import (
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/gafferhq/gaffer/jobstore"
)

// Node is any job handle, whatever its result type: a *Job[Out].
type Node interface {
	node() *node
}

// Job is a handle on a job being built: made by JobType.New, linked to
// others by AddChild and AddFollowOn, and run once it is part of a
// workflow. Result gives a promise of its return value.
//
// Build a graph from one goroutine; inside a running job, use the
// JobContext's methods, which may be called from several.
type Job[Out any] struct {
	n *node
}

func (j *Job[Out]) node() *node { return j.n }

// Result is a promise of the job's return value, for the input of a job
// that runs after it.
func (j *Job[Out]) Result() Promise[Out] { return Promise[Out]{node: j.n} }

// AddChild makes c run after this job's body, before its follow-ons.
// Mistakes (a cycle, an edge added twice) are reported when the graph is
// submitted, naming the jobs.
func (j *Job[Out]) AddChild(c Node) { j.n.addEdge(c.node(), false) }

// AddFollowOn makes f run after this job and all of its children's
// subtrees have finished.
func (j *Job[Out]) AddFollowOn(f Node) { j.n.addEdge(f.node(), true) }

// node is the untyped job under construction. A fan-out makes a million
// of these in one job body, so it is kept small (64 bytes): what a job
// shares with its type (kind, requirements, retries...) stays in the
// type's nodeSpec until an option changes it, and edges, services and
// mistakes live in links, made only for the jobs that have them.
type node struct {
	tmp int64 // negative, unique in this process, until the leader assigns an ID
	*nodeSpec
	input  []byte
	pred   *node      // the first predecessor; the others are in links
	links  *nodeLinks // nil: no successors, services, owner, predecessors after the first, promised requirements or mistake
	mark   uint32     // visit mark of the last collect that saw it
	sealed bool       // handed to a leader already
}

// nodeSpec is what options set. Jobs share their type's until an option
// is given to New, which gives the job a copy of its own.
type nodeSpec struct {
	kind       string
	name       string
	req        *Requirements // shared; copied before an option writes it
	retries    int32         // -1: the leader's default
	checkpoint bool
	service    bool      // a service, not a job
	categories []string  // concurrency limits it counts against
	target     string    // the batch system it asked for (RunOn)
	memRetry   *memRetry // more memory after running out of it

	// frag is the spec as fragments carry it, made by the first collect
	// of a job with this spec (under graphMu), for its jobs to share.
	frag *fragSpec
}

// clone copies s but for frag, which collects write under graphMu while
// New may be copying the spec.
func (s *nodeSpec) clone() nodeSpec {
	return nodeSpec{kind: s.kind, name: s.name, req: s.req, retries: s.retries, checkpoint: s.checkpoint,
		service: s.service, categories: s.categories, target: s.target, memRetry: s.memRetry}
}

// nodeLinks is the rarer part of a node.
type nodeLinks struct {
	children, followOns []*node
	// A client's services; a service's child services. svcOwner is the
	// client or parent service a service was added to.
	services []*node
	svcOwner *node
	reqFrom  *reqPromises // requirements from other jobs' results
	err      error        // first mistake made building it
	preds    []*node      // predecessors after the first (a join's)
}

// eachPred yields the node's predecessors.
func (n *node) eachPred(yield func(*node) bool) {
	if n.pred == nil || !yield(n.pred) {
		return
	}
	for _, p := range n.edges().preds {
		if !yield(p) {
			return
		}
	}
}

// hasPred reports whether p is a predecessor of n. A job's predecessors
// are few; its successors may be 100,000s.
func (n *node) hasPred(p *node) bool {
	return n.pred == p || slices.Contains(n.edges().preds, p)
}

// npreds returns the number of the node's predecessors.
func (n *node) npreds() int {
	if n.pred == nil {
		return 0
	}
	return 1 + len(n.edges().preds)
}

// noLinks is what links reads as while a node has none. Never written.
var noLinks nodeLinks

// edges returns the node's links for reading.
func (n *node) edges() *nodeLinks {
	if n.links == nil {
		return &noLinks
	}
	return n.links
}

// linked returns the node's links for writing, made if need be.
func (n *node) linked() *nodeLinks {
	if n.links == nil {
		n.links = &nodeLinks{}
	}
	return n.links
}

// mistake is the first mistake made building the job, if any.
func (n *node) mistake() error { return n.edges().err }

// fail records err unless a mistake came first.
func (n *node) fail(err error) {
	if n.mistake() == nil {
		n.linked().err = err
	}
}

var tmpIDs atomic.Int64

// graphMu guards the edges of nodes. Building graphs is not a hot path,
// and one lock makes concurrent AddChild calls from a job's goroutines
// safe without a lock per node.
var graphMu sync.Mutex

// newNode makes a job from its type's template and the job's options.
func newNode(template *node, opts []JobOption) *node {
	n := &node{tmp: -tmpIDs.Add(1), nodeSpec: template.nodeSpec}
	if len(opts) > 0 {
		spec := n.nodeSpec.clone()
		r := *spec.req
		r.Accelerators = slices.Clone(r.Accelerators)
		spec.req = &r
		n.nodeSpec = &spec
	}
	for _, o := range opts {
		if o.set == nil {
			continue // the zero JobOption sets nothing
		}
		if err := o.set(n); err != nil {
			n.fail(fmt.Errorf("job %s: %w", n.display(), err))
		}
	}
	return n
}

// setInput records a job's encoded input, or why it could not be
// encoded; what is "job" or "service".
func (n *node) setInput(b []byte, err error, what, typeName string) {
	if n.mistake() != nil {
		return
	}
	if err != nil {
		n.fail(fmt.Errorf("%w: %s of type %q: encoding input: %w", ErrBadInput, what, typeName, err))
		return
	}
	n.input = b
}

func (n *node) display() string { return jobstore.DisplayName(n.name, n.kind, newNumber(n.tmp)) }

// newNumber names a job not yet stored by its temporary number.
func newNumber(tmp int64) string { return "new #" + strconv.FormatInt(-tmp, 10) }

func (n *node) addEdge(s *node, followOn bool) {
	graphMu.Lock()
	defer graphMu.Unlock()
	switch {
	case n.mistake() != nil:
		return
	case s == n:
		n.fail(&GraphError{Problem: "a job cannot be its own successor", Jobs: []string{n.display()}})
		return
	case n.service || s.service:
		n.fail(&GraphError{Problem: "a service cannot be a successor or have successors; add it with AddService", Jobs: []string{n.display(), s.display()}})
		return
	case s.hasPred(n):
		n.fail(&GraphError{Problem: "successor added twice", Jobs: []string{n.display(), s.display()}})
		return
	case n.sealed || s.sealed:
		n.fail(&GraphError{Problem: "job already submitted; a running job can only add jobs it made", Jobs: []string{n.display(), s.display()}})
		return
	}
	if followOn {
		n.linked().followOns = append(n.linked().followOns, s)
	} else {
		n.linked().children = append(n.linked().children, s)
	}
	if s.pred == nil {
		s.pred = n
	} else {
		s.linked().preds = append(s.linked().preds, n)
	}
}

// addService adds s as a service of client n, or, with child, as a
// child service of service n.
func (n *node) addService(s *node, child bool) {
	graphMu.Lock()
	defer graphMu.Unlock()
	switch {
	case n.mistake() != nil:
		return
	case !s.service:
		n.fail(&GraphError{Problem: "only a service (of a type registered with RegisterService) can be added as a service", Jobs: []string{n.display(), s.display()}})
		return
	case child && !n.service:
		n.fail(&GraphError{Problem: "AddChildService is for services; add a job's services with AddService", Jobs: []string{n.display(), s.display()}})
		return
	case !child && n.service:
		n.fail(&GraphError{Problem: "a service cannot have services; use AddChildService", Jobs: []string{n.display(), s.display()}})
		return
	case s.edges().svcOwner != nil:
		n.fail(&GraphError{Problem: "service added twice", Jobs: []string{s.edges().svcOwner.display(), n.display(), s.display()}})
		return
	case s == n:
		n.fail(&GraphError{Problem: "a service cannot be its own child service", Jobs: []string{n.display()}})
		return
	case n.sealed || s.sealed:
		n.fail(&GraphError{Problem: "job already submitted; a running job can only add services it made", Jobs: []string{n.display(), s.display()}})
		return
	}
	n.linked().services = append(n.linked().services, s)
	s.linked().svcOwner = n
}
