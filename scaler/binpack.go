package scaler

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// ShapeCount is Count jobs of one Shape. Queued jobs are grouped this way
// because a workflow's jobs come in few shapes, and packing a group at once
// is what makes 100,000 jobs cheap.
type ShapeCount struct {
	Shape Shape
	Count int
}

// Packing is the result of BinPack.
type Packing struct {
	// Nodes[i] is how many nodes of the i-th node shape given to BinPack
	// the jobs need.
	Nodes []int
	// Unfit lists the job shapes that fit no node shape, in packing order.
	Unfit []ShapeCount
}

// ErrBadShape is matched by errors for node shapes the packer cannot use.
var ErrBadShape = errors.New("scaler: invalid shape")

// BinPack packs jobs onto as few nodes as it reasonably can, so that every
// job can start within targetTime, and returns how many nodes of each shape
// that takes. It is Toil's BinPackedFit, same decisions:
//
//   - jobs are packed largest first (descending Shape order);
//   - each job goes to the first node shape, smallest first, that fits it
//     at all; jobs never spill to a bigger node type;
//   - a node is a reservation: a list of time slices, each with the
//     resources still free during it; a job is placed on the first existing
//     reservation of that type where it can start at a slice boundary no
//     later than targetTime and find its resources free for its whole
//     wall time, splitting the last slice it uses; a job that starts at
//     time 0 may extend a reservation past its end by whole node slices;
//   - otherwise a new node is reserved, as many slices long as the job needs.
//
// It adds shortcuts that change no decision: identical job shapes resume
// the search at the reservation, and the slice in it, where the previous
// one of their group was placed (what comes before refused this very
// shape and has not changed since); and reservations are skipped when
// none of the slices where a job could start has enough of some resource
// (upper bounds on free resources per reservation, per 32 and per 1024
// reservations).
//
// A node shape with a WallTime of 0 or less, or cores that are NaN, is an
// error wrapping ErrBadShape. A targetTime of 0 or less means jobs may only
// start at time 0 of a node.
func BinPack(nodes []Shape, jobs []ShapeCount, targetTime time.Duration) (Packing, error) {
	for i, n := range nodes {
		if n.WallTime <= 0 || math.IsNaN(n.Cores) {
			return Packing{}, fmt.Errorf("%w: node shape %d %v: wall time must be positive and cores a number", ErrBadShape, i, n)
		}
	}
	order := make([]int, len(nodes))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return nodes[a].Compare(nodes[b]) })
	bins := make([]bin, len(nodes))
	for k, i := range order {
		bins[k].shape = nodes[i]
	}

	sorted := make([]ShapeCount, 0, len(jobs))
	for _, j := range jobs {
		if j.Count > 0 {
			sorted = append(sorted, j)
		}
	}
	// Not stable: groups that compare equal have identical shapes, and
	// pack the same in either order.
	slices.SortFunc(sorted, func(a, b ShapeCount) int { return b.Shape.Compare(a.Shape) })

	p := packer{target: targetTime}
	var out Packing
	for gi, g := range sorted {
		p.group = int32(gi + 1)
		k := slices.IndexFunc(bins, func(b bin) bool { return b.shape.fits(g.Shape) })
		if k < 0 {
			out.Unfit = append(out.Unfit, g)
			continue
		}
		b := &bins[k]
		from := 0
		for range g.Count {
			if i, ok := p.place(b, g.Shape, from); ok {
				from = i
				continue
			}
			p.reserve(b, g.Shape)
			from = len(b.heads) - 1
		}
	}
	out.Nodes = make([]int, len(nodes))
	for k, i := range order {
		out.Nodes[i] = len(bins[k].heads)
	}
	return out, nil
}

// slot is one time slice of a node reservation: Shape.WallTime is the
// slice's length and the other fields what is still free during it.
type slot struct {
	free Shape
	next int32 // index in packer.slots; -1 ends the reservation
}

// bin holds the reservations of one node shape.
type bin struct {
	shape Shape
	heads []int32 // first slot of each reservation (node)
	hints []hint  // per reservation: where the current group last started a job
	// bounds holds, per reservation, at least the most free memory, cores
	// and disk among the slices a job may start in (an upper bound: it is
	// made exact when a job is refused, and only shrinks otherwise).
	// blocks and supers hold the same over blockSize and superSize
	// reservations.
	bounds, blocks, supers []Shape
}

// hint lets a job resume the search of a reservation at the slice where
// the previous job of its group started. The slices before it are the
// same as when they refused that identical job, and Toil's scan reaches
// that slice in the same state (start there, nothing accumulated), so the
// decision does not change.
type hint struct {
	group int32 // the group it is valid for
	slot  int32
	at    time.Duration // the slice's start time
}

const (
	blockSize   = 32
	superSize   = blockSize * blockSize
	eagerSlices = 16 // see place
)

type packer struct {
	slots  []slot // all reservations' slices, linked through next
	target time.Duration
	group  int32 // the group of identical job shapes being packed
}

func (p *packer) add(s Shape) int32 {
	p.slots = append(p.slots, slot{free: s, next: -1})
	return int32(len(p.slots) - 1)
}

// covers is the cheap necessary condition for a job to start in a
// reservation whose bound is b.
func covers(b, job Shape) bool {
	return job.Memory <= b.Memory && job.Cores <= b.Cores && job.Disk <= b.Disk
}

// place tries the reservations of b from index from on and returns the
// index of the one that took the job.
func (p *packer) place(b *bin, job Shape, from int) (int, bool) {
	for sb := from / superSize; sb < len(b.supers); sb++ {
		if !covers(b.supers[sb], job) {
			continue
		}
		for blk := max(sb*blockSize, from/blockSize); blk < min((sb+1)*blockSize, len(b.blocks)); blk++ {
			if !covers(b.blocks[blk], job) {
				continue
			}
			for i := max(blk*blockSize, from); i < min((blk+1)*blockSize, len(b.heads)); i++ {
				if !covers(b.bounds[i], job) {
					continue
				}
				h := b.hints[i]
				if h.group != p.group {
					h = hint{p.group, b.heads[i], 0}
				}
				if at, t, ok := p.attempt(b.heads[i], h.slot, h.at, job, b.shape); ok {
					b.hints[i] = hint{p.group, at, t}
					// Tighten the bound while it is cheap; a node cut in
					// many slices keeps its loose bound until it refuses
					// a job.
					p.rebound(b, i, eagerSlices)
					return i, true
				}
				p.rebound(b, i, -1)
			}
		}
	}
	return -1, false
}

// reserve starts a new node reservation for job, as many node slices long
// as the job needs.
func (p *packer) reserve(b *bin, job Shape) {
	head := p.add(b.shape)
	p.occupyEnd(head, job, 0)
	// Like Toil, each extra slice copies the previous one, which already
	// has the job's resources taken: the job runs across all of them.
	tail := head
	for alloc := b.shape.WallTime; alloc < job.WallTime; alloc += b.shape.WallTime {
		n := p.add(p.slots[tail].free)
		p.slots[tail].next = n
		tail = n
	}
	b.heads = append(b.heads, head)
	b.hints = append(b.hints, hint{p.group, head, 0})
	b.bounds = append(b.bounds, noRoom)
	if len(b.heads) > len(b.blocks)*blockSize {
		b.blocks = append(b.blocks, noRoom)
	}
	if len(b.blocks) > len(b.supers)*blockSize {
		b.supers = append(b.supers, noRoom)
	}
	p.rebound(b, len(b.heads)-1, -1)
}

// attempt is Toil's NodeReservation.attemptToAddJob: find a run of slices
// starting no later than the target time, all with room for job, covering
// its wall time; take the job's resources from them. The scan begins at
// slice from, which starts at time at (head and 0 for a full scan). It
// returns the slice where the job starts and that slice's start time.
func (p *packer) attempt(head, from int32, at time.Duration, job, node Shape) (int32, time.Duration, bool) {
	start, end := from, from
	var avail time.Duration
	startTime := at
	for {
		e := p.slots[end].free
		if e.fits(job) {
			avail += e.WallTime
			if avail >= job.WallTime {
				first, firstAt := start, startTime
				var t time.Duration
				for start != end {
					s := &p.slots[start]
					s.free = minus(s.free, job)
					t += s.free.WallTime
					start = s.next
				}
				p.occupyEnd(end, job, t)
				return first, firstAt, true
			}
			if p.slots[end].next < 0 && start == head {
				// The job fits from time 0 to the end of the node but runs
				// longer: extend the node by a fresh slice.
				n := p.add(node)
				p.slots[end].next = n
			}
		} else {
			if startTime+avail+e.WallTime > p.target {
				return 0, 0, false
			}
			// Delay the job's start past this slice.
			start = p.slots[end].next
			startTime += avail + e.WallTime
			avail = 0
		}
		next := p.slots[end].next
		if next < 0 {
			return 0, 0, false
		}
		end = next
	}
}

// occupyEnd takes job's resources from slot i, the last slot the job uses,
// the job having already run for t before it. When the job ends inside the
// slot, the slot is split: the used part, then the rest with the slot's
// old resources.
func (p *packer) occupyEnd(i int32, job Shape, t time.Duration) {
	s := p.slots[i]
	left := job.WallTime - t
	if left >= s.free.WallTime {
		p.slots[i].free = minus(s.free, job)
		return
	}
	rest := s.free
	rest.WallTime = s.free.WallTime - left
	n := p.add(rest) // may move p.slots; s is a copy
	p.slots[n].next = s.next
	used := minus(s.free, job)
	used.WallTime = left
	p.slots[i] = slot{free: used, next: n}
}

func minus(s, job Shape) Shape {
	s.Memory -= job.Memory
	s.Cores -= job.Cores
	s.Disk -= job.Disk
	return s
}

// rebound recomputes the bound of reservation i, its block's and its
// super-block's. A job can only start in a slice beginning no later than
// the target time (the first slice always qualifies), so only those
// slices count. With a limit of 0 or more, rebound gives up (keeping the
// old, looser bound) when there are more slices than that to look at.
func (p *packer) rebound(b *bin, i int, limit int) {
	bd := noRoom
	var t time.Duration
	for s, n := b.heads[i], 0; s >= 0; s, n = p.slots[s].next, n+1 {
		if limit >= 0 && n > limit {
			return
		}
		bd = widest(bd, p.slots[s].free)
		t += p.slots[s].free.WallTime
		if t > p.target {
			break
		}
	}
	old := b.bounds[i]
	if bd == old {
		return
	}
	b.bounds[i] = bd
	blk := i / blockSize
	oldBlk := b.blocks[blk]
	b.blocks[blk] = lift(oldBlk, old, bd, b.bounds[blk*blockSize:min((blk+1)*blockSize, len(b.bounds))])
	if b.blocks[blk] == oldBlk {
		return
	}
	sb := blk / blockSize
	b.supers[sb] = lift(b.supers[sb], oldBlk, b.blocks[blk], b.blocks[sb*blockSize:min((sb+1)*blockSize, len(b.blocks))])
}

// lift returns the new widest of children, which was prev, after one child
// went from old to nw: a full recount only when the child that shrank was
// the widest in that resource.
func lift(prev, old, nw Shape, children []Shape) Shape {
	if (nw.Memory < old.Memory && old.Memory == prev.Memory) ||
		(nw.Cores < old.Cores && old.Cores == prev.Cores) ||
		(nw.Disk < old.Disk && old.Disk == prev.Disk) {
		return widestOf(children)
	}
	return widest(prev, nw)
}

var noRoom = Shape{Memory: math.MinInt64, Cores: math.Inf(-1), Disk: math.MinInt64}

func widest(a, b Shape) Shape {
	return Shape{Memory: max(a.Memory, b.Memory), Cores: max(a.Cores, b.Cores), Disk: max(a.Disk, b.Disk)}
}

func widestOf(s []Shape) Shape {
	m := noRoom
	for _, x := range s {
		m = widest(m, x)
	}
	return m
}

// Constraint is one resource that keeps a job off a node type.
type Constraint struct {
	Resource  string  // "memory", "cores", "disk" or "preemptible"
	Requested float64 // what the job asks (bytes, cores); for "preemptible", 0: the job must not be preempted
	Limit     float64 // what one node offers to jobs, after overhead; for "preemptible", 1: the node may be preempted
}

func (c Constraint) String() string {
	switch c.Resource {
	case "memory", "disk":
		return fmt.Sprintf("%s: asks %s, node offers %s", c.Resource, formatBytes(int64(c.Requested)), formatBytes(int64(c.Limit)))
	case "preemptible":
		return "preemptible: job must not be preempted, node type is preemptible"
	}
	return fmt.Sprintf("%s: asks %g, node offers %g", c.Resource, c.Requested, c.Limit)
}

// FailedConstraints lists why a job of shape job does not fit on an empty
// node whose usable resources are node; it is empty when it fits.
func FailedConstraints(node, job Shape) []Constraint {
	var out []Constraint
	if job.Memory > node.Memory {
		out = append(out, Constraint{"memory", float64(job.Memory), float64(node.Memory)})
	}
	if !(job.Cores <= node.Cores) { // NaN asks never fit
		out = append(out, Constraint{"cores", job.Cores, node.Cores})
	}
	if job.Disk > node.Disk {
		out = append(out, Constraint{"disk", float64(job.Disk), float64(node.Disk)})
	}
	if !job.Preemptible && node.Preemptible {
		out = append(out, Constraint{"preemptible", 0, 1})
	}
	return out
}
