package gaffer

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gafferhq/gaffer/jobstore"
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
	j := l.g.jobs.get(id)
	if j != nil && j.where == inLimit {
		return l.g.cats.why(j)
	}
	reason := l.g.why(id)
	if j != nil && j.where == isIssued {
		if s := l.routes[j.route].sched; s != nil {
			if msg := s.SchedulingStatus(j.bsID); msg != "" {
				reason += "; the batch system says: " + msg
			}
		}
	}
	return reason
}

// Stats counts what a leader did since it was made, for benchmarks and
// monitoring. (Status says where the workflow stands now.)
type Stats struct {
	Attempts   int           // attempts handed to the batch system (services included)
	Successes  int           // job bodies that succeeded
	Failures   int           // attempts that failed
	Commits    int           // store transactions that recorded job events
	FirstIssue time.Duration // from Run's start to its first issued job
}

// Status counts where the workflow's live jobs stand.
type Status struct {
	Live      int // job records the leader holds: jobs not finished with their subtree, and those kept for the end (the root, failed and skipped jobs)
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
	return l.status()
}

func (l *Leader) status() Status {
	if l.g == nil {
		return Status{}
	}
	g := l.g
	return Status{
		Live: g.jobs.len(), Ready: g.readyLen(), Issued: len(g.issued), Backoff: g.backoff.Len(),
		Failed: len(g.failedOwn), Skipped: g.skipped, Services: g.services,
		Finished: g.finished(), Succeeded: g.outcome == jobstore.StatusSucceeded, Cancelled: g.outcome == jobstore.StatusCancelled,
	}
}

// why explains, for a person, where a job stands.
func (g *graph) why(id JobID) string {
	j := g.jobs.get(id)
	if j == nil {
		return "done (or never existed)"
	}
	if sv := j.svc(); sv != nil && j.state == jobstore.StatePending {
		client := sv.client.String()
		if c := g.jobs.get(sv.client); c != nil {
			client = c.display()
		}
		switch {
		case sv.phase == svcWaiting && sv.parent != 0:
			return fmt.Sprintf("service of %s, waiting for its parent service %s to start", client, sv.parent)
		case sv.phase == svcWaiting:
			return fmt.Sprintf("service of %s, waiting for its client's body to finish", client)
		case sv.phase == svcQueued:
			return fmt.Sprintf("service of %s, queued: the service limit (%d) is reached (Config.MaxServices or MaxPreemptibleServices)", client, g.svcMax[svcClass(j)])
		case sv.phase == svcStarting && j.where == isIssued:
			return fmt.Sprintf("service of %s, issued; not yet started", client)
		case sv.phase == svcRunning:
			return fmt.Sprintf("service of %s, running", client)
		case sv.phase == svcStopping:
			return fmt.Sprintf("service of %s, asked to stop", client)
		}
	}
	switch j.state {
	case jobstore.StateServices:
		if j.succ != nil && j.succ.ending {
			return fmt.Sprintf("ending: waiting for %d service(s) to stop", j.succ.svcLive)
		}
		return fmt.Sprintf("body done; waiting for %d of its services to start", j.succ.svcStarting)
	case jobstore.StateChildren:
		if j.succ != nil && j.succ.ending {
			return fmt.Sprintf("successors done; waiting for %d service(s) to stop", j.succ.svcLive)
		}
		return fmt.Sprintf("body done; waiting for %d child subtree(s)", j.pending)
	case jobstore.StateFollowOns:
		return fmt.Sprintf("children done; waiting for %d follow-on subtree(s)", j.pending)
	case jobstore.StateDone:
		return "done"
	case jobstore.StateFailed:
		if j.extra().lastError == "" {
			return "failed: a successor failed"
		}
		return "failed: " + j.extra().lastError
	case jobstore.StateSkipped:
		return fmt.Sprintf("will not run: predecessor %s failed", j.extra().cause)
	case jobstore.StateCancelled:
		return "cancelled"
	case jobstore.StatePending:
		// Below: where it waits.
	}
	switch j.where {
	case inReady:
		return "ready; waiting for room in the batch system (Config.MaxIssued)"
	case inBackoff:
		w := fmt.Sprintf("in retry backoff until %s after %d failed attempt(s)", time.Unix(0, j.extra().notBefore).Format(time.RFC3339), j.tries)
		if j.extra().memFactor > 0 && j.req.Memory > 0 {
			w += "; the next try asks for " + fmtBytes(j.req.Memory) + " of memory"
		}
		if to := g.routedTo(j); to != "" {
			w += "; it runs on " + to
		}
		return w
	case isIssued:
		if to := g.routedTo(j); to != "" {
			return "issued to " + to
		}
		return "issued to the batch system"
	}
	var waiting []string
	for _, p := range j.preds {
		if pj := g.jobs.get(p); pj != nil && !pj.hasReached(id) {
			if pj.state == jobstore.StateServices {
				waiting = append(waiting, pj.display()+" (its services have not all started)")
			} else {
				waiting = append(waiting, pj.display())
			}
		}
	}
	w := fmt.Sprintf("waiting for %d of %d predecessor(s): %v", len(waiting), len(j.preds), waiting)
	if rf := j.extra().reqFrom; rf != "" {
		w += "; its requirements come from results of " + promisedJobs(rf)
	}
	return w
}

// stuck explains a workflow in which nothing can run.
func (l *Leader) stuck() error {
	var b strings.Builder
	b.WriteString("gaffer: no job can run and the workflow is not finished")
	n := 0
	for id, j := range l.g.jobs.all() {
		if j.state == jobstore.StatePending && n < 10 {
			fmt.Fprintf(&b, "\n  - %s: %s", j.display(), l.why(id))
			n++
		}
	}
	return errors.New(b.String())
}

// promisedJobs names the jobs whose results b promises.
func promisedJobs(b string) string {
	var ids []string
	_, _ = mapPlaceholders([]byte(b), func(ph placeholder) ([]byte, error) {
		ids = append(ids, JobID(ph.Job).String())
		return []byte("0"), nil
	})
	return strings.Join(ids, ", ")
}
