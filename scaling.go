package gaffer

import (
	"context"
	"sync"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/scaler"
)

// Clock is batchsystem.Clock: a batch system that keeps its own time.
type Clock = batchsystem.Clock

// workload is the leader's side of the scaler: what is issued, and what
// finished since the scaler last asked. The leader updates it as jobs are
// issued and finish, at O(1) per event; the scaler takes snapshots.
type workload struct {
	mu        sync.Mutex
	issued    map[batchsystem.ID]scaler.Job
	completed []scaler.CompletedJob
}

var _ scaler.Workload = (*workload)(nil)

func (w *workload) add(id batchsystem.ID, kind string, r Requirements) {
	w.mu.Lock()
	w.issued[id] = scaler.Job{Kind: kind, Requirements: r}
	w.mu.Unlock()
}

// done records a job's end. Only successful runs teach the runtime
// model: a lost or failed attempt's time says nothing about how long the
// job takes.
func (w *workload) done(id batchsystem.ID, wall time.Duration, succeeded bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	j, issued := w.issued[id]
	if !issued {
		return
	}
	delete(w.issued, id)
	if succeeded && wall > 0 {
		w.completed = append(w.completed, scaler.CompletedJob{Kind: j.Kind, Requirements: j.Requirements, WallTime: wall})
	}
}

// Issued lists the jobs issued and not finished.
func (w *workload) Issued(ctx context.Context) ([]scaler.Job, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]scaler.Job, 0, len(w.issued))
	for _, j := range w.issued {
		out = append(out, j)
	}
	return out, nil
}

// Completed returns the jobs that finished since the last call.
func (w *workload) Completed(ctx context.Context) ([]scaler.CompletedJob, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.completed
	w.completed = nil
	return out, nil
}

// startScaler starts the cluster scaler when the leader has a
// provisioner. With a batch system that keeps its own clock, the leader
// steps the scaler from its loop (see stepScaler); otherwise the scaler
// runs on a timer beside the leader. The returned function stops it and
// terminates the nodes it started.
func (l *Leader) startScaler(ctx context.Context) (stop func(), err error) {
	if l.cfg.Provisioner == nil {
		return func() {}, nil
	}
	cfg := l.cfg.Scaling
	if cfg.Now == nil && l.clock != nil {
		cfg.Now = l.clock.Now
	}
	s, err := scaler.New(ctx, l.cfg.Provisioner, l.work, cfg)
	if err != nil {
		return nil, err
	}
	l.scaler = s
	shutdown := func() {
		if err := s.Shutdown(context.WithoutCancel(ctx)); err != nil {
			l.log.Warn("scaler shutdown", "err", err)
		}
	}
	if l.clock != nil {
		return shutdown, nil
	}
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.Run(sctx) })
	return func() { cancel(); wg.Wait(); shutdown() }, nil
}

// stepScaler runs a scaling pass when one is due on the batch system's
// own clock. It returns how long until the next is due.
func (l *Leader) stepScaler(ctx context.Context) time.Duration {
	if l.scaler == nil || l.clock == nil {
		return 0
	}
	interval := l.cfg.Scaling.ScaleInterval
	if interval <= 0 {
		interval = scaler.DefaultScaleInterval
	}
	now := l.clock.Now()
	if now.Before(l.nextScale) {
		return l.nextScale.Sub(now)
	}
	if _, err := l.scaler.Step(ctx); err != nil {
		l.log.Warn("scaler pass", "err", err)
	}
	l.nextScale = now.Add(interval)
	return interval
}
