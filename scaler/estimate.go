package scaler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// JobGroup is Count issued jobs of one shape, with up to a few of their
// kinds for messages.
type JobGroup struct {
	Shape Shape
	Count int
	Kinds []string
}

// maxKindsPerGroup bounds JobGroup.Kinds: they are only for messages.
const maxKindsPerGroup = 4

// Estimator turns queued jobs into a desired number of nodes per node type:
// bin packing, then smoothing, preemptible compensation and clamping. It
// keeps the previous smoothed estimates and the preemptible deficits
// between calls, and does no I/O. It is not safe for concurrent use.
type Estimator struct {
	cfg     Config
	types   []NodeType
	usable  []Shape // what jobs can use on a node of each type
	lo, hi  []int
	twin    []int     // for a non-preemptible type: its preemptible twin, or -1
	prev    []float64 // previous smoothed estimate (unrounded), per type
	deficit []int     // preemptible nodes asked for and not delivered, per type
}

// NewEstimator checks the node types and cfg and returns an Estimator for
// them. Errors wrap ErrBadNodeType or ErrBadConfig.
func NewEstimator(types []NodeType, cfg Config) (*Estimator, error) {
	cfg = cfg.withDefaults()
	ts := make([]NodeType, len(types))
	for i, t := range types {
		ts[i] = t.withDefaults()
	}
	if err := cfg.validate(ts); err != nil {
		return nil, err
	}
	e := &Estimator{cfg: cfg, types: ts}
	n := len(ts)
	e.usable, e.lo, e.hi, e.twin = make([]Shape, n), make([]int, n), make([]int, n), make([]int, n)
	e.prev, e.deficit = make([]float64, n), make([]int, n)
	for i, t := range ts {
		e.usable[i] = t.Shape
		if !cfg.AssumeZeroOverhead {
			e.usable[i] = ReserveOverhead(t.Shape)
		}
		e.lo[i], e.hi[i] = cfg.limits(t.Name)
		e.twin[i] = -1
		if t.Shape.Preemptible {
			continue
		}
		// Toil matches a preemptible type to its on-demand flavour by
		// instance type name; our names are unique, so we match by shape.
		for j, u := range ts {
			s := u.Shape
			s.Preemptible = false
			if u.Shape.Preemptible && s == t.Shape {
				e.twin[i] = j
				break
			}
		}
	}
	return e, nil
}

// Types returns the node types with their defaults filled in.
func (e *Estimator) Types() []NodeType { return slices.Clone(e.types) }

// Usable returns what jobs can use on one node of each type, after
// overhead.
func (e *Estimator) Usable() []Shape { return slices.Clone(e.usable) }

// TypeEstimate is the estimate for one node type, step by step.
type TypeEstimate struct {
	Type         string
	Packed       int // nodes the packing needs (0, or at least 1)
	Smoothed     int // after inertia
	Compensation int // added for the preemptible twin's deficit
	Desired      int // after clamping to [min, max]: what the scaler aims for
	Reason       string
}

// Estimate is the result of Estimator.Estimate.
type Estimate struct {
	Types      []TypeEstimate // in the order of the node types
	Jobs       int            // jobs packed
	Unfittable []Rejection    // job shapes no node type can run
}

// Rejection says why queued jobs of one shape fit no node type.
type Rejection struct {
	Job   Shape
	Count int
	Kinds []string          // some of the jobs' kinds
	Types []TypeConstraints // every node type and what it lacks
}

// TypeConstraints is what one node type lacks for a job.
type TypeConstraints struct {
	Type   string
	Failed []Constraint
}

func (r Rejection) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d job(s) of kind %s with shape %v fit no node type:", r.Count, strings.Join(r.Kinds, ", "), r.Job)
	for _, t := range r.Types {
		parts := make([]string, len(t.Failed))
		for i, c := range t.Failed {
			parts[i] = c.String()
		}
		fmt.Fprintf(&b, " %s (%s);", t.Type, strings.Join(parts, "; "))
	}
	return strings.TrimSuffix(b.String(), ";")
}

// ErrUnfittable is matched by an *UnfittableError.
var ErrUnfittable = errors.New("scaler: jobs fit no node type")

// UnfittableError reports queued jobs that no node type can run. The
// scaler still scales for the other jobs; these jobs will wait forever
// unless the leader fails them.
type UnfittableError struct {
	Rejections []Rejection
}

func (e *UnfittableError) Error() string {
	msgs := make([]string, len(e.Rejections))
	for i, r := range e.Rejections {
		msgs[i] = r.String()
	}
	return "scaler: " + strings.Join(msgs, "\n")
}

// Is reports that e is an ErrUnfittable.
func (e *UnfittableError) Is(target error) bool { return target == ErrUnfittable }

// Estimate packs the jobs and returns the desired node counts. It updates
// the smoothing state, so call it once per scaling pass.
func (e *Estimator) Estimate(ctx context.Context, jobs []JobGroup) (Estimate, error) {
	var est Estimate
	fit := make([]ShapeCount, 0, len(jobs))
	for _, g := range jobs {
		if g.Count <= 0 {
			continue
		}
		if slices.ContainsFunc(e.usable, func(u Shape) bool { return u.fits(g.Shape) }) {
			fit = append(fit, ShapeCount{g.Shape, g.Count})
			est.Jobs += g.Count
			continue
		}
		r := Rejection{Job: g.Shape, Count: g.Count, Kinds: g.Kinds}
		for i, u := range e.usable {
			r.Types = append(r.Types, TypeConstraints{e.types[i].Name, FailedConstraints(u, g.Shape)})
		}
		est.Unfittable = append(est.Unfittable, r)
	}

	var packed []int
	if e.cfg.Packer != nil {
		var err error
		if packed, err = e.cfg.Packer.Pack(ctx, e.usable, fit, e.cfg.TargetTime); err != nil {
			return Estimate{}, fmt.Errorf("scaler: packing: %w", err)
		}
		if len(packed) != len(e.usable) {
			return Estimate{}, fmt.Errorf("scaler: packer returned %d counts for %d node types", len(packed), len(e.usable))
		}
	} else {
		p, err := BinPack(e.usable, fit, e.cfg.TargetTime)
		if err != nil {
			return Estimate{}, err
		}
		packed = p.Nodes
	}

	beta := e.cfg.BetaInertia
	for i, t := range e.types {
		te := TypeEstimate{Type: t.Name, Packed: packed[i]}
		// Smoothing starts from 0, so scaling up is smoothed too (Toil).
		w := (1-beta)*float64(te.Packed) + beta*e.prev[i]
		e.prev[i] = w
		te.Smoothed = int(math.Round(w)) // half away from zero, as Toil's _round
		n := te.Smoothed
		var why []string
		if te.Smoothed != te.Packed {
			why = append(why, fmt.Sprintf("inertia %.2g smooths %d to %d", beta, te.Packed, te.Smoothed))
		}
		if j := e.twin[i]; j >= 0 && e.deficit[j] > 0 {
			te.Compensation = int(math.Round(float64(e.deficit[j]) * e.cfg.PreemptibleCompensation))
			if te.Compensation > 0 {
				why = append(why, fmt.Sprintf("+%d for %d preemptible %s not delivered", te.Compensation, e.deficit[j], e.types[j].Name))
			}
			n += te.Compensation
		}
		switch {
		case n > e.hi[i]:
			why = append(why, fmt.Sprintf("capped at max %d", e.hi[i]))
			n = e.hi[i]
		case n < e.lo[i]:
			why = append(why, fmt.Sprintf("raised to min %d", e.lo[i]))
			n = e.lo[i]
		}
		te.Desired = n
		te.Reason = strings.Join(why, "; ")
		est.Types = append(est.Types, te)
	}
	return est, nil
}

// SetDeficit records that n preemptible nodes of type i were asked for and
// not delivered (0 when all were). Non-preemptible types ignore it.
func (e *Estimator) SetDeficit(i, n int) {
	if i < 0 || i >= len(e.types) || !e.types[i].Shape.Preemptible {
		return
	}
	e.deficit[i] = max(n, 0)
}

// Deficit returns the recorded deficit of type i.
func (e *Estimator) Deficit(i int) int { return e.deficit[i] }
