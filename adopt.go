package gaffer

import (
	"context"
)

// adopt takes over what an earlier leader left: results that its workers
// wrote after it stopped (a job that finished while no leader ran is not
// run again), and jobs still running in a batch system whose jobs
// outlive their leader, instead of issuing them again.
func (l *Leader) adopt(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	outs, err := leftoverResults(l.cfg.WorkDir, l.g.keepsFolder, l.log)
	if err != nil {
		return err
	}
	n := 0
	for _, out := range outs {
		if l.g.leftover(out) {
			n++
		}
	}
	if n > 0 {
		l.log.Info("adopted results written while no leader ran", "jobs", n)
	}
	if l.adopts() {
		n = 0
		for _, j := range l.g.toAdopt() {
			// Only the batch system the job was routed to can adopt it.
			rt := l.routes[j.route]
			if rt == nil || rt.adopter == nil {
				l.g.notAdopted(j)
				continue
			}
			at, spec := l.g.attemptOf(j), l.spec(j)
			if !rt.tr.adopt(at, &spec) {
				l.g.notAdopted(j)
				continue
			}
			id, err := rt.adopter.Adopt(ctx, spec, j.extra().backing.id)
			if err != nil {
				l.log.Warn("could not adopt job; issuing it again", "job_id", j.id.String(), "backing", j.extra().backing.id, "err", err)
				l.g.notAdopted(j)
				continue
			}
			l.g.adopted(j, id)
			n++
		}
		if n > 0 {
			l.log.Info("adopted jobs an earlier leader issued", "jobs", n)
		}
	}
	return l.apply(ctx)
}

// adopts reports whether any of the leader's batch systems adopts jobs.
func (l *Leader) adopts() bool {
	for _, rt := range l.routes {
		if rt != nil && rt.adopter != nil {
			return true
		}
	}
	return false
}
