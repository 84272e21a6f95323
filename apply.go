package gaffer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"time"

	"github.com/gafferhq/gaffer/jobstore"
)

// The applier: the one place where the graph's plans meet the store, the
// batch system and the transports (plan.go gives the order, and why).

// apply carries out the plan the graph made since the last one (plan.go
// gives the order): kills, one store transaction, then what must follow
// the commit (after that, the caller's after). It is the only place where
// the leader writes the store.
func (l *Leader) apply(ctx context.Context, after ...func()) error {
	if err := l.land(); err != nil {
		return err
	}
	p := l.g.take()
	l.killPlanned(ctx, p.kill)
	effects := func() {
		l.committed(p)
		for _, fn := range after {
			fn()
		}
	}
	if p.writes() || l.metaDirty {
		if err := l.createAhead(ctx, p); err != nil {
			return fmt.Errorf("gaffer: storing new jobs: %w", err)
		}
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
	l.g.recycle(p)
	if l.g.finished() {
		if err := l.drainDrops(ctx); err != nil {
			return err
		}
	}
	if len(l.g.plan.kill) > 0 {
		return l.apply(ctx) // services that would not be asked to stop
	}
	return nil
}

// createAhead stores the jobs a huge plan (hugeFragment) creates ahead of the plan, in
// transactions of createChunk jobs, so that neither the store nor the
// leader holds a million new records and inputs at once (bbolt keeps
// every key and value of a transaction until it commits, then writes its
// pages from a copy). Meta.Creating names the IDs meanwhile; the plan's
// own transaction clears it, and a leader that finds it set deletes those
// jobs before it loads (dropUnfinished).
func (l *Leader) createAhead(ctx context.Context, p *plan) error {
	if p.alloc.n < hugeFragment {
		return nil // one transaction is fine, and fewer syncs
	}
	type pos struct{ c, i int }
	next := pos{}
	for first := true; next.c < len(p.created); first = false {
		err := l.store.Update(ctx, func(tx jobstore.Tx) error {
			if first {
				at, err := tx.AllocIDs(p.alloc.n)
				if err != nil {
					return err
				}
				if at != p.alloc.first {
					return fmt.Errorf("%w: the store allocated job IDs from %s where the leader expected %s", jobstore.ErrCorrupt, at, p.alloc.first)
				}
				// The mark goes on the store's meta as committed, not
				// on the leader's, whose changes (a new workflow's
				// root) are the plan's to record.
				m, err := tx.Meta()
				if err != nil {
					return err
				}
				m.Creating = &jobstore.IDRange{First: p.alloc.first, N: uint64(p.alloc.n)}
				if err := tx.SetMeta(m); err != nil {
					return err
				}
			}
			at := next
			for n := 0; n < createChunk && at.c < len(p.created); n++ {
				c := &p.created[at.c]
				if len(c.inputs[at.i]) > bigValue {
					// A fan-in's input: the record and bbolt's pages
					// copy it whole, and a heap left fragmented by the
					// chunks before would map those copies anew. Give
					// the free memory back first.
					debug.FreeOSMemory()
				}
				if err := tx.CreateJob(l.g.record(&c.jobs[at.i], &l.rec), c.inputs[at.i]); err != nil {
					return err
				}
				if !p.keepInputs {
					// The store has it now (a failed commit ends the run);
					// a fan-in's megabytes need not wait for the commit.
					c.inputs[at.i] = nil
				}
				if at.i++; at.i == len(c.jobs) {
					at = pos{at.c + 1, 0}
				}
			}
			tx.OnCommit(func() {
				// Written: let the slabs' input lists go as the chunks land.
				for k := next; k != at; {
					if k.i++; k.i == len(p.created[k.c].jobs) {
						if !p.keepInputs {
							p.created[k.c].inputs = nil
						}
						k = pos{k.c + 1, 0}
					}
				}
				next = at
				l.stats.Commits++
			})
			return nil
		})
		if err != nil {
			return err
		}
	}
	// The plan's transaction neither allocates nor creates them again.
	p.alloc.n, p.created = 0, nil
	// What ingesting and storing them took (the fragment, the inputs,
	// bbolt's copies) is garbage now, in size classes the run will not
	// use: give it back rather than keep it mapped for the whole run.
	debug.FreeOSMemory()
	return nil
}

// bigValue is the size of input above which createAhead gives free memory
// back to the system before storing it.
const bigValue = 8 << 20

// createChunk is how many new jobs a transaction of createAhead stores. A
// variable for the tests.
var createChunk = 50_000

// dropUnfinished deletes the jobs of a creation a dead leader began
// (Meta.Creating) and did not finish, a transaction of createChunk at a
// time, and clears the mark.
func (l *Leader) dropUnfinished(ctx context.Context, m *jobstore.Meta) error {
	for m.Creating != nil {
		r := *m.Creating
		n := min(r.N, uint64(createChunk))
		err := l.store.Update(ctx, func(tx jobstore.Tx) error {
			for id := r.First; id < r.First+JobID(n); id++ {
				if err := tx.DeleteJob(id); err != nil && !errors.Is(err, jobstore.ErrNotFound) {
					return err
				}
			}
			left := *m
			if left.Creating = nil; n < r.N {
				left.Creating = &jobstore.IDRange{First: r.First + JobID(n), N: r.N - n}
			}
			if err := tx.SetMeta(left); err != nil {
				return err
			}
			tx.OnCommit(func() { *m = left })
			return nil
		})
		if err != nil {
			return fmt.Errorf("gaffer: deleting the jobs of an unfinished creation: %w", err)
		}
	}
	return nil
}

// deleteLater deletes up to n of the results in dropLater in tx.
func (l *Leader) deleteLater(tx jobstore.Tx, n int) error {
	for n > 0 && len(l.dropLater) > 0 {
		r := &l.dropLater[0]
		k := min(uint64(n), r.N)
		for id := r.First; id < r.First+JobID(k); id++ {
			if err := tx.DeleteResult(id); err != nil {
				return err
			}
		}
		n -= int(k)
		// Taken from the list only once the transaction is made: if it
		// fails, the run ends anyway.
		if r.First, r.N = r.First+JobID(k), r.N-k; r.N == 0 {
			l.dropLater = l.dropLater[1:]
		}
	}
	return nil
}

// drainDrops deletes what is left in dropLater, at the workflow's end.
func (l *Leader) drainDrops(ctx context.Context) error {
	for len(l.dropLater) > 0 {
		if err := l.store.Update(ctx, func(tx jobstore.Tx) error { return l.deleteLater(tx, createChunk) }); err != nil {
			return fmt.Errorf("gaffer: deleting results nothing reads: %w", err)
		}
	}
	return nil
}

// killPlanned stops the attempts a plan kills, at once: they cannot
// wait for a commit.
func (l *Leader) killPlanned(ctx context.Context, kill []attempt) {
	if len(kill) == 0 {
		return
	}
	ids := make([]issueKey, len(kill))
	for i, a := range kill {
		ids[i] = issueKey{route: a.route, id: a.bs}
	}
	if err := l.kill(context.WithoutCancel(ctx), ids); err != nil {
		l.log.Warn("killing jobs", "jobs", len(ids), "err", err)
	}
	l.log.Info("killed jobs", "jobs", len(ids))
}

// Commit pipelining. A narrow workflow (a chain, a grid) has a few jobs
// ready at a time, and each turn of the loop records a few events; if
// every turn waited for its commit's fsync, the disk would set the pace.
// Where it is safe, applySoon makes the plan's writes at once and lets
// the store commit them in the background (jobstore.Pipeliner) while the
// loop goes on: it takes more ends, decides, and issues the jobs they
// made ready, reading what is not committed yet from the plans
// (pendingTx). Plans made meanwhile grow into one, committed when the
// commit in flight lands: the commit rate follows the disk, not the
// events.
//
// It is safe when the transport's attempts die with the leader (in the
// leader's process: memTransport). A leader that dies before a commit
// lands leaves the store as the last commit left it, a state the loop
// went through; what it issued since died with it, and runs again. The
// effects that the world sees wait for the commit: the workflow's end
// (applied at once), kept folders removed, services asked to stop, the
// scaler and metrics told. Workers in folders do not pipeline: their
// attempts outlive the leader, and a job the leader created in a commit
// that never landed gets its ID again in the next leader, whose job could
// then take the old attempt's result file for its own.

// bigPlan is how many new jobs make a plan be committed at once rather
// than in the background: a background commit holds the new jobs' inputs
// until it lands, and bbolt their records, which for hugeFragment jobs
// and more is what createAhead exists to avoid. Below it, a fan-out's
// children are issued while their creation commits.
const bigPlan = 200_000

// applySoon applies the plan as apply does, but where pipelining is safe
// it starts its commit in the background, or, with a commit in flight,
// leaves the plan to grow.
func (l *Leader) applySoon(ctx context.Context) error {
	pl, ok := l.store.(jobstore.Pipeliner)
	if !ok || !l.pipeline {
		return l.apply(ctx)
	}
	if l.g.plan.ended {
		return l.apply(ctx) // the world may see the end only once it is recorded
	}
	l.killPlanned(ctx, l.g.plan.kill)
	l.g.plan.kill = nil
	if l.commit != nil {
		select {
		case <-l.commit.Done():
			if err := l.land(); err != nil {
				return err
			}
		default:
			return nil // the plan grows until the commit in flight lands
		}
	}
	if p := l.g.plan; !p.writes() && !l.metaDirty || p.alloc.n > bigPlan || p.alloc.n >= hugeFragment {
		return l.apply(ctx)
	}
	p := l.g.take()
	p.keepInputs = true // pendingTx reads them until the commit lands
	m := l.meta
	c, err := pl.UpdateAsync(ctx, func(tx jobstore.Tx) error {
		tx.OnCommit(func() {
			l.meta, l.metaDirty = m, false
			l.stats.Commits++
			l.committed(p)
		})
		return l.write(tx, p, &m)
	})
	if err != nil {
		return fmt.Errorf("gaffer: committing job events: %w", err)
	}
	l.commit, l.flying = c, p
	return nil
}

// land waits for the commit in flight, if any, and does what follows it.
func (l *Leader) land() error {
	if l.commit == nil {
		return nil
	}
	err := l.commit.Wait() // runs committed(p)
	p := l.flying
	l.commit, l.flying = nil, nil
	if err != nil {
		return fmt.Errorf("gaffer: committing job events: %w", err)
	}
	l.g.recycle(p)
	return nil
}

// commitPoll is the longest the loop waits for jobs while a commit is in
// flight, before it looks whether the commit has landed.
const commitPoll = time.Millisecond

// pendingTx reads the store as the leader's memory has it: what the plans
// not yet committed (the one in flight, the one growing) wrote, then the
// store.
type pendingTx struct {
	jobstore.ReadTx
	plans [2]*plan // newest first
}

func (l *Leader) pending(tx jobstore.ReadTx) jobstore.ReadTx {
	if l.flying == nil && !l.g.plan.writes() {
		return tx
	}
	return &pendingTx{ReadTx: tx, plans: [2]*plan{l.g.plan, l.flying}}
}

// plannedInput returns job id's input if a plan not committed yet
// creates the job.
func (t *pendingTx) plannedInput(id JobID) ([]byte, bool, error) {
	for _, p := range t.plans {
		if in, ok := p.input(id); ok {
			if len(in) == 0 {
				return nil, true, fmt.Errorf("%w: input of job %s", jobstore.ErrNotFound, id)
			}
			return in, true, nil
		}
	}
	return nil, false, nil
}

func (t *pendingTx) Input(id JobID) ([]byte, error) {
	if in, ok, err := t.plannedInput(id); ok {
		return in, err
	}
	return t.ReadTx.Input(id)
}

func (t *pendingTx) InputView(id JobID) ([]byte, error) {
	if in, ok, err := t.plannedInput(id); ok {
		return in, err
	}
	if v, ok := t.ReadTx.(jobstore.Viewer); ok {
		return v.InputView(id)
	}
	return t.ReadTx.Input(id)
}

func (t *pendingTx) ResultView(id JobID) ([]byte, error) {
	for _, p := range t.plans {
		if v, ok := p.result(id); ok {
			return v, nil
		}
	}
	return resultView(t.ReadTx, id)
}

func (t *pendingTx) Result(id JobID) ([]byte, error) {
	for _, p := range t.plans {
		if v, ok := p.result(id); ok {
			return v, nil
		}
	}
	return t.ReadTx.Result(id)
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
			l.g.killAttempt(l.g.jobs.get(a.job))
		}
	}
	for _, a := range p.forget {
		l.trOf(a.route).forget(a)
	}
	if l.cfg.Provisioner != nil {
		// Only a scaler reads the workload (without one, the runtimes of
		// a million jobs would pile up unread), and it sees the jobs of
		// the batch system it provisions only.
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
			if !p.keepInputs {
				c.inputs[i] = nil // the store has it now; let it go
			}
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
	drop := p.dropped
	if len(drop) > createChunk {
		// A fan-in's million: deleted in later transactions, so that
		// this one does not hold a million of bbolt's nodes. A leader that
		// dies first leaves them, as it leaves the results of jobs that
		// finished before a restart (state_results.go).
		for _, id := range drop[createChunk:] {
			l.dropLater = l.dropLater.Append(id)
		}
		drop = drop[:createChunk]
	}
	for _, id := range drop {
		if err := tx.DeleteResult(id); err != nil {
			return err
		}
	}
	if err := l.deleteLater(tx, createChunk-len(drop)); err != nil {
		return err
	}
	for _, j := range p.dirty {
		if err := tx.UpdateJob(l.g.record(j, &l.rec)); err != nil {
			return err
		}
	}
	if p.kinds {
		m.Kinds = maps.Clone(l.g.perKind)
	}
	m.Creating = nil // createAhead's jobs, if any, are the plan's
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
