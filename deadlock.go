package gaffer

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gafferhq/gaffer/jobstore"
	"github.com/gafferhq/gaffer/scaler"
)

// DeadlockError ends a run in which every running job has been a
// started service, with nothing else moving, for Config.DeadlockWait:
// the services hold the slots that the jobs using them wait for (or a
// service limit is too low for what a client needs at once). It matches
// ErrDeadlock. The store keeps the workflow: resume it with more
// resources or higher limits.
type DeadlockError struct {
	Still    time.Duration // how long nothing had moved
	Services []string      // the running services
	Waiting  []string      // jobs waiting, each with why
}

func (e *DeadlockError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "gaffer: service deadlock: for %s every running job has been a service and nothing else moved; running services: %s",
		e.Still.Round(time.Second), strings.Join(e.Services, ", "))
	if len(e.Waiting) > 0 {
		b.WriteString("; waiting:")
		for _, w := range e.Waiting {
			b.WriteString("\n  - ")
			b.WriteString(w)
		}
	}
	return b.String()
}

func (e *DeadlockError) Is(target error) bool { return target == ErrDeadlock }

// checkDeadlock looks for a service deadlock (toil-brief 2.9). It runs
// only when no job event arrived, at most every DeadlockCheckInterval,
// and costs one Running query. The clock is the time of the last event
// of any kind (a job's end, a service's start, an issue), so a deadlock
// is reported at most DeadlockWait plus one check interval after the
// last thing moved. It never fires while a job waits out a retry backoff
// (it will be issued later), while a service is still starting, or while
// a job that is not a service runs, or while the cluster scaler has a
// node starting (queued jobs may be waiting for it). Otherwise jobs
// queued in the batch system do not prevent it: if they have not started
// by then, the services hold what they need.
func (l *Leader) checkDeadlock(ctx context.Context) error {
	if l.cfg.DeadlockWait < 0 || l.g.services == 0 {
		return nil
	}
	now := time.Now()
	if now.Sub(l.lastDeadlockCheck) < l.cfg.DeadlockCheckInterval {
		return nil
	}
	l.lastDeadlockCheck = now
	if now.Sub(l.lastProgress) < l.cfg.DeadlockWait || l.g.backoff.Len() > 0 {
		return nil
	}
	if l.g.issueRoom(l.cfg.MaxIssued, -1) > 0 {
		// A job is ready and the next turn issues it (it became ready
		// after this turn's issue, when a service started, or a slow
		// round of issues left it for later): something moves.
		return nil
	}
	running, err := l.runningAll(ctx)
	if err != nil {
		l.log.Warn("deadlock check: listing running jobs", "err", err)
		return nil
	}
	if len(running) == 0 {
		return nil
	}
	svcs := l.g.onlyServicesRun(running)
	if svcs == nil {
		return nil
	}
	if l.cfg.Provisioner != nil && len(l.g.issued) > len(running) {
		// Issued jobs are queued; if the cluster is growing, they are
		// waiting for the new nodes, not for the services.
		nodes, err := l.cfg.Provisioner.Nodes(ctx)
		if err != nil {
			l.log.Warn("deadlock check: listing nodes", "err", err)
			return nil
		}
		for _, n := range nodes {
			if n.State == scaler.NodeStarting {
				l.log.Debug("only services run, but a node is starting; not a deadlock yet", "node", n.ID)
				return nil
			}
		}
	}
	return l.deadlockError(svcs, running, now.Sub(l.lastProgress))
}

// deadlockError names the running services and what waits on them: their
// clients, the clients' successors not running, the services queued.
func (l *Leader) deadlockError(svcs []*ljob, running map[issueKey]time.Duration, still time.Duration) error {
	const most = 20
	slices.SortFunc(svcs, func(a, b *ljob) int { return int(a.id) - int(b.id) })
	e := &DeadlockError{Still: still}
	seen := map[JobID]bool{}
	add := func(j *ljob) {
		if len(e.Waiting) < most && !seen[j.id] {
			seen[j.id] = true
			e.Waiting = append(e.Waiting, j.display()+": "+l.why(j.id))
		}
	}
	for _, s := range svcs {
		e.Services = append(e.Services, fmt.Sprintf("%s (service of %s)", s.display(), s.svc().client))
	}
	for _, s := range svcs {
		c := l.g.jobs.get(s.svc().client)
		if c == nil {
			continue
		}
		add(c)
		for _, list := range []jobstore.IDList{c.services(), c.children(), c.followOns()} {
			for id := range list.All() {
				if j := l.g.jobs.get(id); j != nil && j.live() {
					if _, run := running[j.key()]; !run || j.where != isIssued {
						add(j)
					}
				}
			}
		}
	}
	for _, is := range l.g.issued {
		j := is.j
		if _, run := running[j.key()]; !run {
			add(j)
		}
	}
	return e
}
