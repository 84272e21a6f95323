package gaffer

import (
	"sort"
	"time"

	"github.com/gafferhq/gaffer/jobstore"

	"github.com/gafferhq/gaffer/batchsystem"
)

// A plan is what the graph's transitions decided since the leader last
// applied one. The graph changes only its own memory and writes down here
// what must happen outside it; the leader applies a plan in one place
// (Leader.apply), in this order:
//
//  1. kill: attempts to stop at once (cancelled, rescued). Killing before
//     the commit means a leader that dies in between runs such a job again
//     rather than leaving it running with no leader tracking it.
//  2. one store transaction: allocate IDs, create jobs with their inputs,
//     store results, delete and rewrite records, record the workflow's
//     end. A failed commit ends the run: memory and store would disagree,
//     and the store is what a later leader resumes from.
//  3. after the commit: ask services to stop, let the transport forget
//     ended attempts (their folders hold results the store now has), and
//     tell the cluster scaler's workload what was issued and what ended,
//     and Config.Metrics (metrics.go).
//
// A test applies plans to memory instead (planRecorder), so the pure
// tests drive the same transitions and see the same plans as the leader.
type plan struct {
	// The store transaction.
	alloc    idRange   // IDs handed to new jobs
	created  []created // new jobs, each written with its input
	results  []result  // values to store: bodies' results, services' starts
	dirty    map[JobID]*ljob
	deleted  []JobID
	dropped  []JobID            // results nothing reads any more (state_results.go)
	attempts []jobstore.Attempt // records of attempts that ended
	ended    bool               // the workflow ended: record its outcome
	kinds    bool               // the count of records by job type changed

	// Effects.
	kill    []attempt // before the transaction
	stop    []attempt // services to ask to stop, after it
	forget  []attempt // ended attempts whose transport state can go, after it
	issued  []issuedNote
	done    []doneNote
	failed  int // failed attempts, for Stats
	succeed int // successful job bodies, for Stats

	// cats holds the categories of the attempts recorded, for
	// Config.Metrics (metrics.go).
	cats map[attemptRef]string

	// backings counts backing IDs among dirty records that the store does
	// not have yet.
	backings int

	// keepInputs keeps created jobs' inputs after they are written, for a
	// commit in the background (applySoon); resIdx indexes results[:indexed]
	// by job for pendingTx.
	keepInputs bool
	resIdx     map[JobID][]byte
	indexed    int
}

// input returns the input of a job the plan creates.
func (p *plan) input(id JobID) ([]byte, bool) {
	if p == nil {
		return nil, false
	}
	// Fragments come in the order of their IDs, and a fragment's jobs
	// have consecutive IDs (graph.ingest): the one that may hold id is
	// the last that starts at or before it.
	k := sort.Search(len(p.created), func(k int) bool {
		c := p.created[k]
		return len(c.jobs) > 0 && c.jobs[0].id > id
	}) - 1
	if k < 0 {
		return nil, false
	}
	c := p.created[k]
	if len(c.jobs) == 0 {
		return nil, false
	}
	if i := int(id - c.jobs[0].id); i < len(c.jobs) && c.jobs[i].id == id && i < len(c.inputs) {
		return c.inputs[i], true
	}
	return nil, false
}

// result returns a value the plan stores for job id.
func (p *plan) result(id JobID) ([]byte, bool) {
	if p == nil || len(p.results) == 0 {
		return nil, false
	}
	if p.resIdx == nil {
		p.resIdx = make(map[JobID][]byte, len(p.results))
	}
	for ; p.indexed < len(p.results); p.indexed++ {
		r := p.results[p.indexed]
		p.resIdx[r.id] = r.value
	}
	v, ok := p.resIdx[id]
	return v, ok
}

// idRange is a run of consecutive new job IDs.
type idRange struct {
	first JobID
	n     int
}

// created are the jobs of one fragment, with their inputs by position.
type created struct {
	jobs   []ljob // a slab of the graph's records
	inputs [][]byte
}

type result struct {
	id    JobID
	value []byte
}

// issuedNote and doneNote tell the scaler's workload about an attempt;
// issuedNote tells Config.Metrics too.
type issuedNote struct {
	bs    batchsystem.ID
	route uint8
	kind  string
	req   Requirements
	job   JobID
	n     int32  // the attempt's number
	cats  string // the job's categories, NUL-joined
	at    int64  // issue time, UnixNano
}

type doneNote struct {
	bs    batchsystem.ID
	route uint8
	wall  time.Duration
	ok    bool
}

// backingFlush is how many backing IDs the leader may hold unsaved while
// it issues: a leader that dies before saving them leaves those jobs
// running unwatched and issues them again, so it saves often while it
// issues to a slow scheduler.
const backingFlush = 100

// mustSave reports whether the leader must apply the plan before it
// issues more jobs: too many backing IDs unsaved, or, at the end of an
// issue batch, any.
func (p *plan) mustSave(endOfBatch bool) bool {
	return p.backings >= backingFlush || endOfBatch && p.backings > 0
}

// writes reports whether the plan has anything for the store.
func (p *plan) writes() bool {
	return p.alloc.n > 0 || len(p.results) > 0 || len(p.attempts) > 0 || len(p.dirty) > 0 || len(p.deleted) > 0 || len(p.dropped) > 0 || p.ended || p.kinds
}

func newPlan() *plan { return &plan{dirty: map[JobID]*ljob{}} }

// take returns the plan made so far and starts a new one.
func (g *graph) take() *plan {
	p := g.plan
	if g.spare != nil {
		g.plan, g.spare = g.spare, nil
	} else {
		g.plan = &plan{dirty: make(map[JobID]*ljob, len(p.dirty))}
	}
	return p
}

// recycle takes back a plan the leader has applied, for take to hand out
// again: a plan's lists grow to the size of a turn of the loop, and
// growing new ones every turn was a quarter of a fan-out's allocations.
// Nothing may hold p or its lists afterwards.
func (g *graph) recycle(p *plan) {
	if p == nil || p == g.plan {
		return
	}
	for _, c := range p.created {
		clear(c.inputs) // the slabs stay the graph's; the inputs go
	}
	clear(p.created)
	clear(p.results)
	clear(p.attempts)
	clear(p.dirty)
	clear(p.kill)
	clear(p.stop)
	clear(p.forget)
	clear(p.issued)
	clear(p.done)
	*p = plan{
		created: p.created[:0], results: p.results[:0], dirty: p.dirty, deleted: p.deleted[:0], dropped: p.dropped[:0],
		attempts: p.attempts[:0], kill: p.kill[:0], stop: p.stop[:0], forget: p.forget[:0], issued: p.issued[:0], done: p.done[:0],
	}
	g.spare = p
}
