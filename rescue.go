package gaffer

import (
	"context"
	"fmt"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
)

// rescue finds issued jobs that the batch system lost or that ran too
// long, kills them and counts each as a failed attempt (retried if it has
// tries left), as Toil's leader does (toil-brief 2.8):
//
//   - a job the batch system stops listing among its issued jobs for
//     Config.MissingChecks checks in a row is missing: lost by the batch
//     system, or unknown to a scheduler that forgot it;
//   - a job running longer than Config.MaxJobDuration is over-long
//     (services excepted: they live as long as their client's subtree).
//
// It runs at most every Config.RescueInterval, only when the batch system
// had nothing to report (a report means it is alive and talking), and
// costs one Issued and one Running query: O(issued), never O(all jobs).
func (l *Leader) rescue(ctx context.Context) error {
	now := time.Now()
	if now.Sub(l.lastRescue) < l.cfg.RescueInterval || len(l.issued) == 0 {
		return nil
	}
	l.lastRescue = now
	listed, err := l.bs.Issued(ctx)
	if err != nil {
		l.log.Warn("rescue: listing issued jobs", "err", err)
		return nil // a failing query is not evidence that jobs are lost
	}
	known := make(map[batchsystem.ID]bool, len(listed))
	for _, id := range listed {
		known[id] = true
	}
	var running map[batchsystem.ID]time.Duration
	if l.cfg.MaxJobDuration > 0 {
		if running, err = l.bs.Running(ctx); err != nil {
			l.log.Warn("rescue: listing running jobs", "err", err)
		}
	}
	var kill []batchsystem.ID
	var events []event
	for id, j := range l.issued {
		var fin *batchsystem.FinishedJob
		if known[id] {
			delete(l.missing, id)
		} else {
			l.missing[id]++
			if l.missing[id] >= l.cfg.MissingChecks {
				fin = &batchsystem.FinishedJob{ID: id, ExitCode: batchsystem.ExitUnavailable, Reason: batchsystem.Missing,
					Message: fmt.Sprintf("the batch system stopped listing the job for %d checks", l.missing[id])}
			}
		}
		// Services run as long as their users need them: the limit is
		// for jobs.
		if d, ok := running[id]; ok && d > l.cfg.MaxJobDuration && j.svc() == nil {
			fin = &batchsystem.FinishedJob{ID: id, ExitCode: 1, Reason: batchsystem.MaxJobDuration, WallTime: d,
				Message: fmt.Sprintf("ran %s, longer than the maximum job duration of %s", d.Round(time.Millisecond), l.cfg.MaxJobDuration)}
		}
		if fin == nil {
			continue
		}
		kill = append(kill, id)
		l.untrack(id, j, 0, false)
		if l.inProc {
			// An outcome the lost job may have left will never be taken.
			l.mailMu.Lock()
			delete(l.mail, j.seq)
			l.mailMu.Unlock()
		} else {
			l.cleanup = append(l.cleanup, l.jobDir(j.id))
		}
		l.log.Warn("rescuing job", "job_id", j.id.String(), "batch_id", id, "reason", fin.Reason.String(), "why", fin.Message)
		events = append(events, event{j: j, fin: fin})
	}
	if len(kill) == 0 {
		return nil
	}
	if err := l.bs.Kill(ctx, kill); err != nil {
		l.log.Warn("rescue: killing jobs", "err", err)
	}
	return l.apply(ctx, events)
}
