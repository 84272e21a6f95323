package gaffer

import (
	"fmt"

	"github.com/gafferhq/gaffer/batchsystem"
)

// Why says where a job stands and, if it is not running, why: waiting for
// which predecessors, ready but held back by Config.MaxIssued, in retry
// backoff until when, queued in the batch system for want of what,
// skipped because of which failed job. It is safe to call while Run runs;
// it waits for the leader's current step to end.
func (l *Leader) Why(id JobID) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.g == nil {
		return "the leader has not loaded its workflow (Run has not started)"
	}
	return l.why(id)
}

func (l *Leader) why(id JobID) string {
	j := l.g.jobs[id]
	if j != nil && j.where == inLimit {
		return l.cats.why(j)
	}
	reason := l.g.why(id)
	if j != nil && j.where == isIssued {
		if s, ok := l.bs.(batchsystem.SchedulingStatuser); ok {
			if msg := s.SchedulingStatus(j.bsID); msg != "" {
				reason += "; the batch system says: " + msg
			}
		}
	}
	return reason
}

// Status counts where the workflow's live jobs stand.
type Status struct {
	Live      int // jobs not yet finished with their subtree
	Ready     int // runnable, waiting for room in the batch system
	Issued    int // handed to the batch system
	Backoff   int // waiting out a retry backoff
	Failed    int // failed by their own error
	Skipped   int // not run because a predecessor failed
	Services  int // service jobs not yet ended (queued, starting, running, stopping)
	Finished  bool
	Succeeded bool
	Cancelled bool
}

func (s Status) String() string {
	return fmt.Sprintf("%d live, %d ready, %d issued, %d in backoff, %d failed, %d skipped, %d services",
		s.Live, s.Ready, s.Issued, s.Backoff, s.Failed, s.Skipped, s.Services)
}

// Status returns a snapshot of the workflow. Like Why, it is safe to call
// while Run runs.
func (l *Leader) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.g == nil {
		return Status{}
	}
	return Status{
		Live: len(l.g.jobs), Ready: l.g.readyLen(), Issued: len(l.issued), Backoff: l.g.backoff.Len(),
		Failed: len(l.g.failedOwn), Skipped: l.g.skipped, Services: l.g.services,
		Finished: l.g.finished(), Succeeded: l.g.rootDone, Cancelled: l.g.rootCancelled,
	}
}
