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
// and one Running query: O(issued), never O(all jobs).
func (l *Leader) rescue(ctx context.Context) error {
	now := time.Now()
	if now.Sub(l.lastRescue) < l.cfg.RescueInterval || len(l.g.issued) == 0 {
		return nil
	}
	l.lastRescue = now
	listed, err := l.bs.Issued(ctx)
	if err != nil {
		l.log.Warn("rescue: listing issued jobs", "err", err)
		return nil // a failing query is not evidence that jobs are lost
	}
	var running map[batchsystem.ID]time.Duration
	if l.cfg.MaxJobDuration > 0 {
		if running, err = l.bs.Running(ctx); err != nil {
			l.log.Warn("rescue: listing running jobs", "err", err)
		}
	}
	for _, e := range l.g.rescue(listed, running, l.cfg.MissingChecks, l.cfg.MaxJobDuration) {
		l.log.Warn("rescuing job", "job_id", e.j.id.String(), "batch_id", e.fin.ID, "reason", e.fin.Reason.String(), "why", e.fin.Message)
	}
	return l.apply(ctx)
}
