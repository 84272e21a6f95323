package gaffer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gafferhq/gaffer/jobstore"
)

// Cancel asks the leader to cancel jobs, each with its whole subtree:
// issued jobs of it are killed, and all of it is recorded as cancelled,
// not failed. The job's ancestors end cancelled once their other
// successors have finished, and so the workflow ends with a
// *CancelledError. Cancelling a service cancels its client. IDs of jobs
// already finished are ignored. It returns at once; the leader acts at
// its next turn. Safe to call from any goroutine.
func (l *Leader) Cancel(ids ...JobID) {
	l.reqMu.Lock()
	l.reqCancel = append(l.reqCancel, ids...)
	l.reqMu.Unlock()
}

// CancelWorkflow asks the leader to end the workflow for good: issued
// jobs are killed and the store records the workflow as cancelled, so
// that a later Run returns ErrCancelled rather than resuming it. (To stop
// a run and resume it later, cancel Run's context instead.)
func (l *Leader) CancelWorkflow() {
	l.reqMu.Lock()
	l.reqCancelWF = true
	l.reqMu.Unlock()
}

// controlDir holds requests from other processes: one empty file per
// request, made by temporary file and rename. The leader is the only
// writer of the store, so other processes ask through files, as Toil's
// kill flag does.
func controlDir(workDir string) string { return filepath.Join(workDir, "control") }

const cancelWorkflowFile = "cancel-workflow"

// RequestCancel asks, from any process, the leader running the workflow
// whose work directory is workDir (Config.WorkDir; by default the store's
// path plus ".work") to cancel jobs as Leader.Cancel does. The leader
// looks for requests every Config.ControlInterval; a request made while
// no leader runs is taken by the next one. A path that no leader has
// used as its work directory is refused with ErrNotWorkDir.
func RequestCancel(workDir string, ids ...JobID) error {
	for _, id := range ids {
		if err := putRequest(workDir, "cancel-"+strconv.FormatUint(uint64(id), 10)); err != nil {
			return err
		}
	}
	return nil
}

// RequestCancelWorkflow asks, from any process, for the whole workflow
// to be cancelled, as Leader.CancelWorkflow does.
func RequestCancelWorkflow(workDir string) error { return putRequest(workDir, cancelWorkflowFile) }

func putRequest(workDir, name string) error {
	if err := checkWorkDir(workDir); err != nil {
		return fmt.Errorf("gaffer: request %s: %w", name, err)
	}
	dir := controlDir(workDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("gaffer: request %s: %w", name, err)
	}
	if err := writeFileAtomic(filepath.Join(dir, name), nil, true); err != nil {
		return fmt.Errorf("gaffer: request %s: %w", name, err)
	}
	return nil
}

// control takes cancel requests: those made in this process at every
// turn, those in the control folder every ControlInterval (one ReadDir of
// a folder that is almost always empty). A request file is removed once
// what it asked for is committed.
func (l *Leader) control(ctx context.Context) error {
	l.reqMu.Lock()
	ids, all := l.reqCancel, l.reqCancelWF
	l.reqCancel, l.reqCancelWF = nil, false
	l.reqMu.Unlock()
	var files []string
	if now := time.Now(); now.Sub(l.lastControl) >= l.cfg.ControlInterval {
		l.lastControl = now
		dir := controlDir(l.cfg.WorkDir)
		entries, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			l.log.Warn("reading control requests", "err", err)
		}
		for _, e := range entries {
			name := e.Name()
			switch {
			case name == cancelWorkflowFile:
				all = true
			case strings.HasPrefix(name, "cancel-") && !strings.Contains(name, ".tmp"):
				n, err := strconv.ParseUint(strings.TrimPrefix(name, "cancel-"), 10, 64)
				if err != nil {
					l.log.Warn("unreadable control request; removed", "file", name)
				} else {
					ids = append(ids, JobID(n))
				}
			default:
				continue
			}
			files = append(files, filepath.Join(dir, name))
		}
	}
	if len(ids) == 0 && !all && len(files) == 0 {
		return nil
	}
	if all {
		l.log.Info("workflow cancelled by request")
		l.g.cancelWorkflow()
	} else {
		for _, id := range ids {
			if l.g.cancel(id) {
				l.log.Info("job cancelled by request", "job_id", id.String())
			} else {
				l.log.Info("cancel request for a job not running or waiting; ignored", "job_id", id.String())
			}
		}
	}
	return l.apply(ctx, func() {
		for _, f := range files {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				l.log.Warn("removing a control request", "file", f, "err", err)
			}
		}
	})
}

// cancelWorkflow ends the whole workflow as cancelled: every issued job
// is to be killed. Job records are left as they are; the workflow's
// status says it all.
func (g *graph) cancelWorkflow() {
	g.end(jobstore.StatusCancelled)
	for _, is := range g.issued {
		j := is.j
		g.killAttempt(j)
	}
}

// cancel cancels job id with its whole subtree, at once: issued jobs of
// it are to be killed, and every job of it is recorded as cancelled.
// Predecessors that reached it settle it as cancelled; they end
// cancelled once their other successors have settled, and so on up to
// the root. Cancelling a service cancels its client. It reports whether
// there was anything to cancel.
func (g *graph) cancel(id JobID) bool {
	j := g.jobs.get(id)
	if sv := j.svc(); sv != nil {
		j = g.jobs.get(sv.client)
	}
	if j == nil || !j.live() {
		return false
	}
	g.cancelled = append(g.cancelled, j.id)
	var sub []*ljob
	g.walkSubtree(j, func(s *ljob) {
		if s.live() {
			sub = append(sub, s)
		}
	})
	sub = append(sub, j)
	for _, s := range sub {
		g.killAttempt(s)
		g.releaseSlot(s)
		g.setState(s, jobstore.StateCancelled)
	}
	// Jobs outside the subtree that reached a job of it (the root's
	// predecessors, and those of joins) settle it as cancelled.
	for _, s := range sub {
		for _, qid := range s.preds {
			q := g.jobs.get(qid)
			if q != nil && q.state != jobstore.StateCancelled && q.hasReached(s.id) {
				q.cancelledSucc = true
				q.pending--
				if q.pending == 0 {
					g.phaseDone(q)
				}
			}
		}
	}
	if j.id == g.root {
		g.end(jobstore.StatusCancelled)
	}
	return true
}
