package scaler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"
)

// ClusterScaler sizes a cluster for a workflow: one pass (Step) learns
// runtimes, estimates the nodes needed and adds or removes nodes. Run does
// one pass every scale interval; a simulation calls Step in virtual time.
type ClusterScaler struct {
	prov  Provisioner
	work  Workload
	drain Drainer // may be nil
	cfg   Config
	log   *slog.Logger

	mu       sync.Mutex // one pass at a time
	est      *Estimator
	model    RuntimeModel
	types    []NodeType
	static   map[string]bool
	draining map[string]bool
}

// New returns a ClusterScaler for the provisioner's node types. Nodes the
// provisioner already has are static: counted, never terminated.
func New(ctx context.Context, p Provisioner, w Workload, cfg Config) (*ClusterScaler, error) {
	if p == nil || w == nil {
		return nil, fmt.Errorf("%w: a provisioner and a workload are required", ErrBadConfig)
	}
	types, err := p.NodeTypes(ctx)
	if err != nil {
		return nil, fmt.Errorf("scaler: listing node types: %w", err)
	}
	est, err := NewEstimator(types, cfg)
	if err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &ClusterScaler{
		prov: p, work: w, cfg: cfg, log: cfg.Logger, est: est,
		model: RuntimeModel{Default: cfg.DefaultRuntime}, types: est.Types(),
		static: map[string]bool{}, draining: map[string]bool{},
	}
	s.drain = cfg.Drainer
	if s.drain == nil {
		s.drain, _ = p.(Drainer)
	}
	nodes, err := p.Nodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("scaler: listing nodes: %w", err)
	}
	for _, n := range nodes {
		s.static[n.ID] = true
	}
	return s, nil
}

// Report says what one pass saw and did.
type Report struct {
	At         time.Time
	Jobs       int // issued jobs packed
	Completed  int // completed jobs learnt from in this pass
	Types      []TypeReport
	Kept       []KeptNode  // nodes wanted gone but not terminated, with why
	Unfittable []Rejection // issued jobs no node type can run
}

// TypeReport is one node type in a Report.
type TypeReport struct {
	TypeEstimate
	Current    int      // nodes before the pass, draining ones included
	Added      int      // nodes the provisioner delivered
	Undrained  []string // draining nodes put back to work
	Drained    []string // nodes chosen for removal in this pass
	Terminated []string // nodes terminated in this pass
	Deficit    int      // preemptible nodes asked for and not delivered
}

// Step does one scaling pass. It returns the report even when it also
// returns an error. Jobs that fit no node type are an *UnfittableError
// (errors.Is ErrUnfittable), returned after the cluster was scaled for the
// other jobs; provisioner failures for one node type do not stop the
// others and are joined into the error.
func (s *ClusterScaler) Step(ctx context.Context) (*Report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rep := &Report{At: s.cfg.Now()}

	done, err := s.work.Completed(ctx)
	if err != nil {
		return rep, fmt.Errorf("scaler: completed jobs: %w", err)
	}
	for _, j := range done {
		s.model.Observe(j.Kind, j.WallTime)
	}
	rep.Completed = len(done)
	issued, err := s.work.Issued(ctx)
	if err != nil {
		return rep, fmt.Errorf("scaler: issued jobs: %w", err)
	}
	est, err := s.est.Estimate(ctx, s.group(issued))
	if err != nil {
		return rep, err
	}
	rep.Jobs, rep.Unfittable = est.Jobs, est.Unfittable

	nodes, err := s.prov.Nodes(ctx)
	if err != nil {
		return rep, fmt.Errorf("scaler: listing nodes: %w", err)
	}
	desired := make([]int, len(s.types))
	for i, te := range est.Types {
		desired[i] = te.Desired
	}
	plan := planScale(scaleInput{types: s.types, desired: desired, nodes: nodes,
		draining: s.draining, static: s.static, now: rep.At})
	rep.Types = make([]TypeReport, len(s.types))
	typeOf := map[string]int{}
	for i, t := range s.types {
		rep.Types[i] = TypeReport{TypeEstimate: est.Types[i], Current: plan.current[i]}
		typeOf[t.Name] = i
	}
	for _, n := range nodes {
		if i, ok := typeOf[n.Type]; ok {
			if slices.Contains(plan.undrain, n.ID) {
				rep.Types[i].Undrained = append(rep.Types[i].Undrained, n.ID)
			}
			if slices.Contains(plan.drain, n.ID) {
				rep.Types[i].Drained = append(rep.Types[i].Drained, n.ID)
			}
		}
	}

	var errs []error
	if len(plan.undrain) > 0 {
		if s.drain != nil {
			if err := s.drain.Undrain(ctx, plan.undrain); err != nil {
				errs = append(errs, fmt.Errorf("scaler: undraining %v: %w", plan.undrain, err))
			}
		}
		for _, id := range plan.undrain {
			delete(s.draining, id)
		}
	}
	for i, t := range s.types {
		if plan.add[i] == 0 {
			continue
		}
		got, err := s.prov.AddNodes(ctx, t.Name, plan.add[i])
		if err != nil {
			errs = append(errs, fmt.Errorf("scaler: adding %d %s nodes: %w", plan.add[i], t.Name, err))
		}
		rep.Types[i].Added = max(got, 0)
		s.log.Info("scaler: adding nodes", "type", t.Name, "asked", plan.add[i], "got", got, "desired", desired[i])
	}
	for i, t := range s.types {
		if t.Shape.Preemptible {
			achieved := plan.serving[i] + rep.Types[i].Added
			if plan.add[i] == 0 { // scaling in or steady: no deficit
				achieved = max(achieved, desired[i])
			}
			rep.Types[i].Deficit = max(desired[i]-achieved, 0)
			s.est.SetDeficit(i, rep.Types[i].Deficit)
		}
	}

	if len(plan.drain) > 0 {
		if s.drain != nil {
			if err := s.drain.Drain(ctx, plan.drain); err != nil {
				errs = append(errs, fmt.Errorf("scaler: draining %v: %w", plan.drain, err))
			}
		}
		s.log.Info("scaler: draining nodes", "nodes", plan.drain)
	}
	s.draining = map[string]bool{}
	for _, id := range plan.candidates {
		s.draining[id] = true
	}
	if len(plan.candidates) > 0 {
		// Ask again: a job may have landed on a node before it was drained.
		fresh, err := s.prov.Nodes(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("scaler: listing nodes: %w", err))
		} else {
			term, kept, gone := pickIdle(plan.candidates, fresh)
			for _, id := range gone {
				delete(s.draining, id)
			}
			rep.Kept = append(rep.Kept, kept...)
			if len(term) > 0 {
				if err := s.prov.TerminateNodes(ctx, term); err != nil {
					errs = append(errs, fmt.Errorf("scaler: terminating %v: %w", term, err))
				} else {
					s.log.Info("scaler: terminated idle nodes", "nodes", term)
					for _, id := range term {
						delete(s.draining, id)
					}
					for _, n := range fresh {
						if i, ok := typeOf[n.Type]; ok && slices.Contains(term, n.ID) {
							rep.Types[i].Terminated = append(rep.Types[i].Terminated, n.ID)
						}
					}
				}
			}
		}
	}
	rep.Kept = append(rep.Kept, plan.kept...)
	for _, k := range rep.Kept {
		s.log.Debug("scaler: node kept", "node", k.ID, "type", k.Type, "reason", k.Reason)
	}
	if len(est.Unfittable) > 0 {
		errs = append(errs, &UnfittableError{Rejections: est.Unfittable})
	}
	return rep, errors.Join(errs...)
}

// group turns issued jobs into shapes, with the learnt runtimes.
func (s *ClusterScaler) group(jobs []Job) []JobGroup {
	type key struct {
		shape Shape
	}
	idx := map[key]int{}
	var out []JobGroup
	service := 24*s.cfg.TargetTime + time.Hour
	runtimes := map[string]time.Duration{}
	for _, j := range jobs {
		wall := service
		if !j.Service {
			w, ok := runtimes[j.Kind]
			if !ok {
				w = s.model.Runtime(j.Kind)
				runtimes[j.Kind] = w
			}
			wall = w
		}
		k := key{JobShape(j.Requirements, wall)}
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, JobGroup{Shape: k.shape})
		}
		g := &out[i]
		g.Count++
		if len(g.Kinds) < maxKindsPerGroup && !slices.Contains(g.Kinds, j.Kind) {
			g.Kinds = append(g.Kinds, j.Kind)
		}
	}
	return out
}

// Runtime returns the runtime the scaler currently assumes for a kind.
func (s *ClusterScaler) Runtime(kind string) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.model.Runtime(kind)
}

// Draining returns the IDs of the nodes being drained for removal.
func (s *ClusterScaler) Draining() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.draining))
}

// Run does a pass now and then every scale interval until ctx is done,
// and returns ctx's error. A failing pass is logged and the next one runs
// anyway. Run leaves the nodes as they are: call Shutdown after it.
func (s *ClusterScaler) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.ScaleInterval)
	defer t.Stop()
	for {
		if _, err := s.Step(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("scaler: pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Shutdown terminates every node of the scaler's node types except static
// ones, busy or not (Toil's shutDown with force): call it when the
// workflow is over.
func (s *ClusterScaler) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	nodes, err := s.prov.Nodes(ctx)
	if err != nil {
		return fmt.Errorf("scaler: listing nodes: %w", err)
	}
	known := map[string]bool{}
	for _, t := range s.types {
		known[t.Name] = true
	}
	var ids []string
	for _, n := range nodes {
		if known[n.Type] && !s.static[n.ID] && n.State != NodeStopping {
			ids = append(ids, n.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	if err := s.prov.TerminateNodes(ctx, ids); err != nil {
		return fmt.Errorf("scaler: terminating %d nodes: %w", len(ids), err)
	}
	s.draining = map[string]bool{}
	return nil
}
