package gaffer

import (
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/jobstore"
)

// The leader's logs at Info and above are few and meant to be read: the
// workflow's start ("workflow started", in open), its resumption with
// what was found, each failed attempt (Warn), rescues and adoptions, and
// the run's end with its figures. Issues and successes are at Debug.

// maxLoggedError caps the failure text in a log line; the attempt's
// record in the store and the run's error keep all of it.
const maxLoggedError = 500

// logFailure logs a failed attempt of j, numbered n, that ended as fin
// reports (nil: it never reached the batch system), with msg its
// failure. It runs after the graph took the failure, so j's state says
// whether the job runs again.
func (l *Leader) logFailure(j *ljob, n int32, fin *batchsystem.FinishedJob, msg string) {
	if len(msg) > maxLoggedError {
		msg = msg[:maxLoggedError] + "…"
	}
	attrs := []any{"job_id", j.id.String(), "job_kind", j.kind}
	if name := j.extra().name; name != "" {
		attrs = append(attrs, "job_name", name)
	}
	attrs = append(attrs, "attempt", n)
	if fin != nil {
		attrs = append(attrs, "reason", fin.Reason.String(), "exit_code", fin.ExitCode)
		if fin.Node != "" {
			attrs = append(attrs, "node", fin.Node)
		}
	} else {
		attrs = append(attrs, "reason", "not issued")
	}
	attrs = append(attrs, "err", msg)
	switch {
	case j.state != jobstore.StatePending:
		l.log.Warn("job failed; no tries left", attrs...)
	case j.where == inBackoff:
		at := time.Unix(0, j.extra().notBefore)
		l.log.Warn("job attempt failed; retrying", append(attrs, "retry_in", at.Sub(l.g.now()).Round(time.Millisecond))...)
	default:
		l.log.Warn("job attempt failed; retrying", attrs...)
	}
}

// logResumed logs what a leader found in a store it resumes, stored
// with meta m: the stored status, the live jobs and where they stand,
// and the services started again (restarted) or given up because one of
// their client's services failed (failed).
func (l *Leader) logResumed(m jobstore.Meta, restarted, failed int) {
	s := l.status()
	attrs := []any{"workflow_id", m.WorkflowID, "epoch", m.Epoch, "stored_status", m.Status.String(),
		"live_jobs", s.Live, "ready", s.Ready, "backoff", s.Backoff, "failed", s.Failed, "skipped", s.Skipped, "services", s.Services}
	if restarted > 0 {
		attrs = append(attrs, "clients_restarting_services", restarted)
	}
	if failed > 0 {
		attrs = append(attrs, "clients_with_failed_services", failed)
	}
	l.log.Info("workflow resumed", attrs...)
}

// logEnd logs the end of a run: the workflow's outcome, or that the
// leader stopped first, with the run's figures.
func (l *Leader) logEnd() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.g == nil {
		return
	}
	took := time.Since(l.runStart)
	st := l.stats
	attrs := []any{"workflow_id", l.meta.WorkflowID, "took", took.Round(time.Millisecond),
		"jobs_succeeded", st.Successes, "attempts", st.Attempts, "failed_attempts", st.Failures, "commits", st.Commits}
	if took > 0 {
		attrs = append(attrs, "jobs_per_s", int64(float64(st.Successes)/took.Seconds()))
	}
	switch l.g.outcome {
	case jobstore.StatusSucceeded:
		l.log.Info("workflow succeeded", attrs...)
	case jobstore.StatusFailed:
		l.log.Warn("workflow failed", append(attrs, "failed_jobs", len(l.g.failedOwn), "skipped_jobs", l.g.skipped)...)
	case jobstore.StatusCancelled:
		l.log.Info("workflow cancelled", attrs...)
	case jobstore.StatusNew, jobstore.StatusRunning:
		l.log.Info("leader stopped before the workflow ended; run again to resume", append(attrs, "live_jobs", l.g.jobs.len())...)
	}
}
