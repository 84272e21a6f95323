package gaffer

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/gafferhq/gaffer/jobstore"
)

// A stepped run drives the leader one turn at a time instead of to the
// end, for programs that embed it in a loop of their own and for tests
// (jobflow-remote's run(ticks) and run_one_job):
//
//	if err := l.Start(ctx, root); err != nil { ... }
//	for {
//		done, err := l.Step(ctx, 1)
//		...
//		if done { break }
//	}
//	v, err := l.Result(ctx)
//
// Close ends a stepped run that is left unfinished: it kills the jobs
// still issued, and the store keeps the workflow for a later run.

// Start loads the workflow (storing root's graph on a fresh store, as Run
// does) and prepares the leader to be stepped. It takes over jobs an
// earlier leader left: results they wrote while no leader ran, and jobs
// still running in a batch system that can adopt them.
func (l *Leader) Start(ctx context.Context, root Node) error {
	l.runStart = time.Now()
	if err := l.open(ctx, root); err != nil {
		return err
	}
	l.lastProgress = time.Now()
	if l.meta.Status != jobstore.StatusRunning {
		return nil // finished already: Result says how
	}
	if err := l.adopt(ctx); err != nil {
		return err
	}
	stop, err := l.startScaler(ctx)
	if err != nil {
		return err
	}
	l.stopScaler, l.running = stop, true
	return nil
}

// Step advances a started leader by n turns. A turn issues what is ready,
// waits up to Config.PollInterval for job events and records them (or
// runs the periodic checks). It returns true once the workflow has ended;
// an error ends the run (Close then kills what is still issued).
func (l *Leader) Step(ctx context.Context, n int) (finished bool, err error) {
	if l.g == nil {
		return false, errors.New("gaffer: Step before Start")
	}
	l.mu.Lock()
	for range n {
		if l.g.finished() {
			break
		}
		if _, err = l.tick(ctx, -1); err != nil {
			break
		}
	}
	if err == nil {
		err = l.apply(ctx) // a step ends with what it did committed
	}
	finished = l.g.finished()
	l.mu.Unlock()
	if finished {
		l.end(ctx)
	}
	return finished, err
}

// RunOneJob runs one job to completion: if no job is issued, it issues
// one ready job (and no more), then takes turns until an attempt of an
// issued job ends, and returns that job's ID. Other ready jobs stay
// ready. It returns 0 once the workflow has ended.
func (l *Leader) RunOneJob(ctx context.Context) (JobID, error) {
	if l.g == nil {
		return 0, errors.New("gaffer: RunOneJob before Start")
	}
	l.mu.Lock()
	defer func() {
		done := l.g.finished()
		l.mu.Unlock()
		if done {
			l.end(ctx)
		}
	}()
	for !l.g.finished() {
		issueCap := 0
		if len(l.g.issued) == 0 {
			issueCap = 1
		}
		ended, err := l.tick(ctx, issueCap)
		if err != nil {
			return 0, err
		}
		if len(ended) > 0 {
			return ended[0].id, l.apply(ctx)
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
	}
	return 0, nil
}

// Result returns the root job's value once the workflow has succeeded,
// the *FailedJobsError or *CancelledError that ended it, or
// ErrNotFinished while it runs.
func (l *Leader) Result(ctx context.Context) (json.RawMessage, error) {
	if l.g == nil {
		return nil, ErrNotFinished
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.meta.Status == jobstore.StatusSucceeded:
		var v []byte
		err := l.store.View(ctx, func(tx jobstore.ReadTx) (err error) { v, err = tx.RootResult(); return err })
		return v, err
	case l.meta.Status == jobstore.StatusFailed || l.g.outcome == jobstore.StatusFailed:
		return nil, l.g.failure()
	case l.meta.Status == jobstore.StatusCancelled || l.g.outcome == jobstore.StatusCancelled:
		e := &CancelledError{Workflow: len(l.g.cancelled) == 0}
		for _, id := range l.g.cancelled {
			name := id.String()
			if j := l.g.jobs.get(id); j != nil {
				name = j.display()
			}
			e.Jobs = append(e.Jobs, name)
		}
		return nil, e
	}
	return nil, ErrNotFinished
}
