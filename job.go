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
func (j *Job[Out]) Result() Promise[Out] { return Promise[Out]{ref: &promiseRef{node: j.n}} }

// AddChild makes c run after this job's body, before its follow-ons.
// Mistakes (a cycle, an edge added twice) are reported when the graph is
// submitted, naming the jobs.
func (j *Job[Out]) AddChild(c Node) { j.n.addEdge(c.node(), false) }

// AddFollowOn makes f run after this job and all of its children's
// subtrees have finished.
func (j *Job[Out]) AddFollowOn(f Node) { j.n.addEdge(f.node(), true) }

// node is the untyped job under construction. A fan-out makes a million
// of these in one job body, so it is kept small: requirements are shared
// with the job type's template until an option changes them.
type node struct {
	tmp        int64 // negative, unique in this process, until the leader assigns an ID
	kind       string
	name       string
	input      []byte
	req        *Requirements // shared; copied before an option writes it
	retries    int32         // -1: the leader's default
	checkpoint bool
	service    bool         // a service, not a job
	categories []string     // concurrency limits it counts against
	target     string       // the batch system it asked for (RunOn)
	reqFrom    *reqPromises // requirements from other jobs' results
	memRetry   *memRetry    // more memory after running out of it
	sealed     bool         // handed to a leader already
	mark       uint32       // visit mark of the last collect that saw it

	children, followOns []*node
	preds               []*node
	// A client's services; a service's child services. svcOwner is the
	// client or parent service a service was added to.
	services []*node
	svcOwner *node
	err      error // first mistake made building it
}

var tmpIDs atomic.Int64

// graphMu guards the edges of nodes. Building graphs is not a hot path,
// and one lock makes concurrent AddChild calls from a job's goroutines
// safe without a lock per node.
var graphMu sync.Mutex

// newNode makes a job from its type's template and the job's options.
func newNode(template *node, opts []JobOption) *node {
	n := &node{tmp: -tmpIDs.Add(1), kind: template.kind, name: template.name, req: template.req,
		retries: template.retries, checkpoint: template.checkpoint, service: template.service, categories: template.categories,
		target:   template.target,
		memRetry: template.memRetry}
	if len(opts) > 0 {
		r := *n.req
		r.Accelerators = slices.Clone(r.Accelerators)
		n.req = &r
	}
	for _, o := range opts {
		if o.set == nil {
			continue // the zero JobOption sets nothing
		}
		if err := o.set(n); err != nil && n.err == nil {
			n.err = fmt.Errorf("job %s: %w", n.display(), err)
		}
	}
	return n
}

func (n *node) display() string { return jobstore.DisplayName(n.name, n.kind, newNumber(n.tmp)) }

// newNumber names a job not yet stored by its temporary number.
func newNumber(tmp int64) string { return "new #" + strconv.FormatInt(-tmp, 10) }

func (n *node) addEdge(s *node, followOn bool) {
	graphMu.Lock()
	defer graphMu.Unlock()
	switch {
	case n.err != nil:
		return
	case s == n:
		n.err = &GraphError{Problem: "a job cannot be its own successor", Jobs: []string{n.display()}}
		return
	case n.service || s.service:
		n.err = &GraphError{Problem: "a service cannot be a successor or have successors; add it with AddService", Jobs: []string{n.display(), s.display()}}
		return
	case slices.Contains(s.preds, n): // a job's predecessors are few; its successors may be 100,000s
		n.err = &GraphError{Problem: "successor added twice", Jobs: []string{n.display(), s.display()}}
		return
	case n.sealed || s.sealed:
		n.err = &GraphError{Problem: "job already submitted; a running job can only add jobs it made", Jobs: []string{n.display(), s.display()}}
		return
	}
	if followOn {
		n.followOns = append(n.followOns, s)
	} else {
		n.children = append(n.children, s)
	}
	s.preds = append(s.preds, n)
}

// addService adds s as a service of client n, or, with child, as a
// child service of service n.
func (n *node) addService(s *node, child bool) {
	graphMu.Lock()
	defer graphMu.Unlock()
	switch {
	case n.err != nil:
		return
	case !s.service:
		n.err = &GraphError{Problem: "only a service (of a type registered with RegisterService) can be added as a service", Jobs: []string{n.display(), s.display()}}
		return
	case child && !n.service:
		n.err = &GraphError{Problem: "AddChildService is for services; add a job's services with AddService", Jobs: []string{n.display(), s.display()}}
		return
	case !child && n.service:
		n.err = &GraphError{Problem: "a service cannot have services; use AddChildService", Jobs: []string{n.display(), s.display()}}
		return
	case s.svcOwner != nil:
		n.err = &GraphError{Problem: "service added twice", Jobs: []string{s.svcOwner.display(), n.display(), s.display()}}
		return
	case s == n:
		n.err = &GraphError{Problem: "a service cannot be its own child service", Jobs: []string{n.display()}}
		return
	case n.sealed || s.sealed:
		n.err = &GraphError{Problem: "job already submitted; a running job can only add services it made", Jobs: []string{n.display(), s.display()}}
		return
	}
	n.services = append(n.services, s)
	s.svcOwner = n
}
