package gaffer

import (
	"context"
	"fmt"
	"maps"

	"github.com/gafferhq/gaffer/jobstore"
)

// The applier: the one place where the graph's plans meet the store, the
// batch system and the transports (plan.go gives the order, and why).

// apply carries out the plan the graph made since the last one (plan.go
// gives the order): kills, one store transaction, then what must follow
// the commit (after that, the caller's after). It is the only place where
// the leader writes the store.
func (l *Leader) apply(ctx context.Context, after ...func()) error {
	p := l.g.take()
	if len(p.kill) > 0 {
		ids := make([]issueKey, len(p.kill))
		for i, a := range p.kill {
			ids[i] = issueKey{route: a.route, id: a.bs}
		}
		if err := l.kill(context.WithoutCancel(ctx), ids); err != nil {
			l.log.Warn("killing jobs", "jobs", len(ids), "err", err)
		}
		l.log.Info("killed jobs", "jobs", len(ids))
	}
	effects := func() {
		l.committed(p)
		for _, fn := range after {
			fn()
		}
	}
	if p.writes() || l.metaDirty {
		m := l.meta
		err := l.store.Update(ctx, func(tx jobstore.Tx) error {
			tx.OnCommit(func() {
				l.meta, l.metaDirty = m, false
				l.stats.Commits++
				effects()
			})
			return l.write(tx, p, &m)
		})
		if err != nil {
			return fmt.Errorf("gaffer: committing job events: %w", err)
		}
	} else {
		effects()
	}
	if len(l.g.plan.kill) > 0 {
		return l.apply(ctx) // services that would not be asked to stop
	}
	return nil
}

// committed does what follows the commit of plan p: ask services to stop,
// let the transport forget ended attempts, tell the scaler's workload.
func (l *Leader) committed(p *plan) {
	l.stats.Successes += p.succeed
	l.stats.Failures += p.failed
	l.recordLive(p.attempts)
	for _, a := range p.stop {
		if !l.g.isIssued(a) {
			continue // ended meanwhile
		}
		if err := l.trOf(a.route).stop(a); err != nil {
			l.log.Warn("could not ask a service to stop; killing it", "job_id", a.job.String(), "err", err)
			l.g.killAttempt(l.g.jobs[a.job])
		}
	}
	for _, a := range p.forget {
		l.trOf(a.route).forget(a)
	}
	// The scaler sees the jobs of the batch system it provisions only.
	for _, n := range p.issued {
		if n.route == l.scaled {
			l.work.add(n.bs, n.kind, l.cfg.fill(n.req))
		}
	}
	for _, n := range p.done {
		if n.route == l.scaled {
			l.work.done(n.bs, n.wall, n.ok)
		}
	}
	if l.cfg.Metrics != nil {
		l.report(p)
	}
}

// write records plan p in transaction tx, and the workflow's end in m.
func (l *Leader) write(tx jobstore.Tx, p *plan, m *jobstore.Meta) error {
	if p.alloc.n > 0 {
		first, err := tx.AllocIDs(p.alloc.n)
		if err != nil {
			return err
		}
		if first != p.alloc.first {
			return fmt.Errorf("%w: the store allocated job IDs from %s where the leader expected %s", jobstore.ErrCorrupt, first, p.alloc.first)
		}
	}
	for _, c := range p.created {
		for i := range c.jobs {
			if err := tx.CreateJob(l.g.record(&c.jobs[i], &l.rec), c.inputs[i]); err != nil {
				return err
			}
			c.inputs[i] = nil // the store has it now; let it go
		}
	}
	for i := range p.attempts {
		a := &p.attempts[i]
		a.Requirements = l.cfg.fill(a.Requirements)
		if a.BatchSystem == "" { // not routed: the only batch system's, or none
			a.BatchSystem = l.bsName
		}
		if err := tx.PutAttempt(a); err != nil {
			return err
		}
	}
	for _, r := range p.results {
		if err := tx.PutResult(r.id, r.value); err != nil {
			return err
		}
	}
	for _, id := range p.deleted {
		if err := tx.DeleteJob(id); err != nil {
			return err
		}
	}
	for _, j := range p.dirty {
		if err := tx.UpdateJob(l.g.record(j, &l.rec)); err != nil {
			return err
		}
	}
	if p.kinds {
		m.Kinds = maps.Clone(l.g.perKind)
	}
	if p.ended && m.Status == jobstore.StatusRunning {
		switch l.g.outcome {
		case jobstore.StatusCancelled:
			m.Status, m.Cancel = jobstore.StatusCancelled, true
		case jobstore.StatusFailed:
			m.Status = jobstore.StatusFailed
		case jobstore.StatusSucceeded:
			v, err := tx.Result(m.Root)
			if err != nil {
				return err
			}
			if hasPromises(v) {
				if v, err = resolve(tx, v, 0, l.g.finishedJob); err != nil {
					return fmt.Errorf("gaffer: resolving the root's value: %w", err)
				}
			}
			if err := tx.SetRootResult(v); err != nil {
				return err
			}
			m.Status = jobstore.StatusSucceeded
		}
	}
	return tx.SetMeta(*m)
}
