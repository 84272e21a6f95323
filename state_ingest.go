package gaffer

import (
	"fmt"
	"github.com/gafferhq/gaffer/jobstore"
	"runtime/debug"
	"strings"
)

// ingest adds a fragment's jobs to the graph under parent (nil for a
// workflow's first graph), with IDs from the store's sequence, and
// rewrites the promises of their inputs and of result (the parent's
// value) from temporary numbers to IDs. It returns the new IDs by
// temporary number and the rewritten result. A promise that cannot be
// rewritten is an error matching ErrBadInput, and then nothing changed.
// The new records and their inputs go in the plan.
func (g *graph) ingest(f *fragment, parent *ljob, result []byte) (*tmpIndex, []byte, error) {
	if len(f.Jobs) == 0 {
		return nil, result, nil
	}
	first := g.nextID
	ids := newTmpIndex(f.Jobs, first)
	// Records, inputs and the usual single predecessor of each come in
	// slabs of ingestSlab jobs, rather than two allocations per job or
	// arrays as long as the fragment: a slab is let go once its jobs are
	// written (inputs) or done (records), so a fan-out gives memory back
	// as it runs.
	nslabs := (len(f.Jobs) + ingestSlab - 1) / ingestSlab
	slabs := make([][]ljob, nslabs)
	inputSlabs := make([][][]byte, nslabs)
	predSlab := make([][]JobID, nslabs)
	for s := range nslabs {
		n := min(ingestSlab, len(f.Jobs)-s*ingestSlab)
		inputSlabs[s] = make([][]byte, n)
	}
	input := func(i int) *[]byte { return &inputSlabs[i/ingestSlab][i%ingestSlab] }
	job := func(i int) *ljob { return &slabs[i/ingestSlab][i%ingestSlab] }
	promised := make([]bool, len(f.Jobs))
	reqFrom := map[int]string{} // few jobs have requirements from promises
	for i := range f.Jobs {
		if rf := f.Jobs[i].reqFrom(); len(rf) > 0 {
			b, err := rewriteTemps(rf, ids)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: job %s: requirements: %w", ErrBadInput, f.Jobs[i].display(), err)
			}
			reqFrom[i] = string(b)
		}
		in := []byte(f.Jobs[i].Input)
		if hasPromises(in) {
			var err error
			if in, err = rewriteTemps(in, ids); err != nil {
				return nil, nil, fmt.Errorf("%w: job %s: %w", ErrBadInput, f.Jobs[i].display(), err)
			}
			promised[i] = true
			f.Jobs[i].Input = nil // rewritten: a fan-in's megabytes need not be held twice
		}
		*input(i) = in
	}
	if hasPromises(result) {
		var err error
		if result, err = rewriteTemps(result, ids); err != nil {
			return nil, nil, fmt.Errorf("%w: job %s: result: %w", ErrBadInput, parent.display(), err)
		}
	}
	if len(f.Jobs) >= hugeFragment {
		// The running job's own garbage (its job handles) may be as big
		// as what we are about to build; collect it now, so that the
		// heap does not grow to twice both.
		debug.FreeOSMemory()
	}
	g.nextID += JobID(len(f.Jobs))
	if g.plan.alloc.n == 0 {
		g.plan.alloc.first = first
	}
	g.plan.alloc.n += len(f.Jobs)

	for s := range nslabs {
		slabs[s] = make([]ljob, len(inputSlabs[s]))
		predSlab[s] = make([]JobID, len(inputSlabs[s]))
	}
	for i := range f.Jobs {
		fj := &f.Jobs[i]
		j := job(i)
		*j = ljob{
			id: first + JobID(i), kind: g.intern(fj.Kind), state: jobstore.StatePending,
			req: g.shareReq(derefReq(fj.Req)), retries: fj.Retries, checkpoint: fj.Checkpoint,
			inputPromises: promised[i],
		}
		if n := fj.name(); n != "" {
			j.ext().name = n
		}
		if len(fj.Categories) > 0 {
			j.ext().categories = g.intern(strings.Join(fj.Categories, "\x00"))
		}
		if fj.Target != "" {
			j.ext().target = g.intern(fj.Target)
		}
		if rf, ok := reqFrom[i]; ok {
			j.ext().reqFrom = rf
		}
		if m := fj.MemRetry; m != nil {
			j.ext().memFactor, j.ext().memCeiling = m.Factor, m.Ceiling
		}
		fj.Input = nil // the plan has it now
	}
	at := func(tmp int64) (*ljob, int) {
		k := int(ids.get(tmp) - first)
		return job(k), k
	}
	link := func(p *ljob, children, followOns []int64) {
		for _, t := range children {
			s, k := at(t)
			p.addChild(s.id)
			s.addPred(p.id, predSlab, k)
		}
		for _, t := range followOns {
			s, k := at(t)
			p.addFollowOn(s.id)
			s.addPred(p.id, predSlab, k)
		}
	}
	linkServices := func(c *ljob, svcs []int64) {
		for _, t := range svcs {
			s, k := at(t)
			c.addService(s.id)
			sv := &svcInfo{client: c.id}
			if ps := f.Jobs[k].parentSvc(); ps != 0 {
				sv.parent = ids.get(ps)
			}
			s.ext().svc = sv
		}
	}
	for i := range f.Jobs {
		link(job(i), f.Jobs[i].children(), f.Jobs[i].followOns())
		linkServices(job(i), f.Jobs[i].services())
	}
	if parent != nil {
		link(parent, f.Children, f.FollowOns)
		linkServices(parent, f.Services)
		g.touch(parent)
	}
	for i := range f.Jobs {
		g.add(job(i))
		g.noteReads(job(i), *input(i), reqFrom[i])
	}
	for s := range nslabs {
		g.plan.created = append(g.plan.created, created{jobs: slabs[s], inputs: inputSlabs[s]})
	}
	return ids, result, nil
}

// ingestSlab is how many job records ingest allocates at once.
const ingestSlab = 256

// hugeFragment is the size of fragment above which ingest collects
// garbage first and the leader stores the new jobs ahead of the plan
// (createAhead). A variable for the tests.
var hugeFragment = 250_000

// addPred records a predecessor, taking the first one's storage from
// the slabs, k being the job's place in its fragment.
func (j *ljob) addPred(p JobID, slabs [][]JobID, k int) {
	if j.preds == nil {
		slab, k := slabs[k/ingestSlab], k%ingestSlab
		slab[k] = p
		j.preds = slab[k : k+1 : k+1]
		return
	}
	j.preds = append(j.preds, p)
}

func derefReq(r *Requirements) Requirements {
	if r == nil {
		return Requirements{}
	}
	return *r
}

// tmpIndex maps the temporary numbers of a fragment's jobs to their IDs.
// Jobs made one after another have consecutive numbers, so it is usually
// a slice; a map otherwise.
type tmpIndex struct {
	lo    int64
	dense []JobID
	m     map[int64]JobID
}

func newTmpIndex(jobs []fragJob, first JobID) *tmpIndex {
	x := &tmpIndex{}
	if len(jobs) == 0 {
		return x
	}
	lo, hi := jobs[0].Tmp, jobs[0].Tmp
	for i := range jobs {
		lo, hi = min(lo, jobs[i].Tmp), max(hi, jobs[i].Tmp)
	}
	if span := hi - lo + 1; span <= 2*int64(len(jobs))+16 {
		x.lo, x.dense = lo, make([]JobID, span)
		for i := range jobs {
			x.dense[jobs[i].Tmp-lo] = first + JobID(i)
		}
		return x
	}
	x.m = make(map[int64]JobID, len(jobs))
	for i := range jobs {
		x.m[jobs[i].Tmp] = first + JobID(i)
	}
	return x
}

func (x *tmpIndex) lookup(tmp int64) (JobID, bool) {
	if x == nil {
		return 0, false
	}
	if x.m != nil {
		id, ok := x.m[tmp]
		return id, ok
	}
	if k := tmp - x.lo; k >= 0 && k < int64(len(x.dense)) && x.dense[k] != 0 {
		return x.dense[k], true
	}
	return 0, false
}

// get is lookup for numbers validate has checked.
func (x *tmpIndex) get(tmp int64) JobID { id, _ := x.lookup(tmp); return id }

// rewriteTemps replaces temporary job numbers in placeholders by IDs.
func rewriteTemps(b []byte, ids *tmpIndex) ([]byte, error) {
	return mapPlaceholders(b, func(ph placeholder) ([]byte, error) {
		if ph.Job < 0 {
			id, ok := ids.lookup(ph.Job)
			if !ok {
				return nil, fmt.Errorf("promise of job #%d, which is not part of the graph", -ph.Job)
			}
			ph.Job = int64(id)
		}
		return placeholderJSON(ph), nil
	})
}
