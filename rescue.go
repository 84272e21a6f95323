package gaffer

import (
	"context"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
)

// rescue finds issued jobs that the batch system lost or that ran too
// long, kills them and counts each as a failed attempt (graph.rescue
// decides which), as Toil's leader does (toil-brief 2.8). It runs at most
// every Config.RescueInterval, only when the batch system had nothing to
// report (a report means it is alive and talking), and costs one Issued
// and one Running query per batch system: O(issued), never O(all jobs).
func (l *Leader) rescue(ctx context.Context) error {
	now := time.Now()
	if now.Sub(l.lastRescue) < l.cfg.RescueInterval || len(l.g.issued) == 0 {
		return nil
	}
	l.lastRescue = now
	for r, rt := range l.routes {
		if rt != nil {
			l.rescueOn(ctx, uint8(r), rt)
		}
	}
	return l.apply(ctx)
}

// rescueOn rescues the jobs of one batch system.
func (l *Leader) rescueOn(ctx context.Context, r uint8, rt *route) {
	listed, err := rt.bs.Issued(ctx)
	if err != nil {
		l.log.Warn("rescue: listing issued jobs", "batch_system", rt.name, "err", err)
		return // a failing query is not evidence that jobs are lost
	}
	var running map[batchsystem.ID]time.Duration
	if l.cfg.MaxJobDuration > 0 {
		if running, err = rt.bs.Running(ctx); err != nil {
			l.log.Warn("rescue: listing running jobs", "batch_system", rt.name, "err", err)
		}
	}
	for _, e := range l.g.rescue(r, listed, running, l.cfg.MissingChecks, l.cfg.MaxJobDuration) {
		l.log.Warn("rescuing job", "job_id", e.j.id.String(), "batch_system", rt.name, "batch_id", e.fin.ID, "reason", e.fin.Reason.String(), "why", e.fin.Message)
	}
}
