package slurm

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
)

// The poller is the only code that asks Slurm about job status. Callers
// (Running, WaitFinished, Kill) read what it last saw, so the number of
// queries depends on the clock alone: at most one query set per
// PollInterval, however many jobs are issued and however often, or from how
// many goroutines, the leader asks. A query set is one squeue per
// MaxIDsPerQuery jobs, plus, only for jobs squeue no longer lists, one
// sacct per MaxIDsPerQuery of those.

// pollLoop runs until Shutdown. It sleeps while no job needs watching.
func (b *BatchSystem) pollLoop() {
	defer close(b.pollDone)
	var last time.Time
	for {
		if !b.anyToWatch() {
			select {
			case <-b.stopPoll:
				return
			case <-b.wake:
				continue // re-check: the job may be gone already
			}
		}
		if wait := b.opts.PollInterval - time.Since(last); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-b.stopPoll:
				t.Stop()
				return
			case <-t.C:
			}
		}
		last = time.Now()
		b.pollOnce(b.stopCtx)
	}
}

func (b *BatchSystem) anyToWatch() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, j := range b.jobs {
		if j.finished == nil {
			return true
		}
	}
	return false
}

// watchItem is what one poll needs of a job, copied under the lock.
type watchItem struct {
	slurmID string
	since   time.Time
}

// pollOnce runs one query set and applies what it learned.
func (b *BatchSystem) pollOnce(ctx context.Context) {
	b.polls.Add(1)
	b.mu.Lock()
	var items []watchItem
	for _, j := range b.jobs {
		if j.finished == nil {
			items = append(items, watchItem{j.slurmID, j.since})
		}
	}
	b.mu.Unlock()
	if len(items) == 0 {
		return
	}
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.slurmID
	}

	seen := map[string]jobStatus{}
	answered := map[string]bool{} // IDs whose query succeeded, listed or not
	for _, chunk := range chunks(ids, b.opts.MaxIDsPerQuery) {
		st, err := b.squeue(ctx, chunk)
		if err != nil {
			b.log.Warn("slurm: squeue failed; job states unchanged until the next poll", "err", err)
			continue
		}
		for _, s := range st {
			seen[s.SlurmID] = s
		}
		for _, id := range chunk {
			answered[id] = true
		}
	}

	// Jobs squeue answered for but did not list: the controller forgot them
	// (MinJobAge passed). Ask accounting.
	var missing []string
	var oldest time.Time
	for _, it := range items {
		if _, ok := seen[it.slurmID]; ok || !answered[it.slurmID] {
			continue
		}
		missing = append(missing, it.slurmID)
		if oldest.IsZero() || it.since.Before(oldest) {
			oldest = it.since
		}
	}
	inAcct := map[string]bool{}
	if len(missing) > 0 && b.opts.Accounting != AccountingNone {
		for _, chunk := range chunks(missing, b.opts.MaxIDsPerQuery) {
			st, err := b.sacct(ctx, chunk, oldest)
			if err != nil {
				b.log.Warn("slurm: sacct failed; jobs it was asked about stay unknown", "err", err)
				continue
			}
			for _, s := range st {
				seen[s.SlurmID] = s
				inAcct[s.SlurmID] = true
			}
		}
	}
	b.apply(seen, answered, inAcct)
}

// squeue asks for the status of ids, finished ones included (--states=all):
// the controller keeps finished jobs, with exit codes, for MinJobAge.
func (b *BatchSystem) squeue(ctx context.Context, ids []string) ([]jobStatus, error) {
	out, err := b.run(ctx, "squeue", "--noheader", "--states=all",
		"--jobs="+strings.Join(ids, ","), "--Format="+squeueFormat)
	if err != nil {
		// squeue fails like this when no ID of the list is known: that is
		// an answer ("none of these"), not a failure.
		if isInvalidJobID(err) {
			return nil, nil
		}
		return nil, err
	}
	st, errs := parseSqueue(string(out))
	for _, e := range errs {
		b.log.Warn("slurm: ignoring squeue line", "err", e)
	}
	return st, nil
}

// isInvalidJobID tells the error squeue and scontrol give for IDs the
// controller does not hold.
func isInvalidJobID(err error) bool {
	return strings.Contains(stderrOf(err), "Invalid job id specified")
}

// sacct asks accounting about ids, submitted no earlier than since.
func (b *BatchSystem) sacct(ctx context.Context, ids []string, since time.Time) ([]jobStatus, error) {
	args := []string{"--noheader", "--parsable2", "--delimiter=" + fieldSep, "--allocations",
		"--format=" + sacctFormat,
		// A start time is needed: without one, sacct -j searches all of
		// history. An hour of slack covers clock skew with slurmdbd.
		"--starttime=" + since.Add(-time.Hour).Format("2006-01-02T15:04:05"),
		"--jobs=" + strings.Join(ids, ",")}
	if b.opts.Accounting == AccountingJobComp {
		args = append([]string{"--completion"}, args...)
	}
	out, err := b.run(ctx, "sacct", args...)
	if err != nil {
		return nil, err
	}
	st, errs := parseSacct(string(out))
	for _, e := range errs {
		b.log.Warn("slurm: ignoring sacct line", "err", e)
	}
	return st, nil
}

// apply records a poll's findings.
func (b *BatchSystem) apply(seen map[string]jobStatus, answered, inAcct map[string]bool) {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	added := false
	for _, j := range b.jobs {
		if j.finished != nil || !answered[j.slurmID] {
			continue
		}
		st, ok := seen[j.slurmID]
		if !ok {
			b.markUnknown(j)
			continue
		}
		// Only the controller's name counts: slurmdbd may show a
		// placeholder ("allocation") for a second or two after a job ends.
		if j.adopted && !inAcct[j.slurmID] && st.Name != "" && st.Name != j.name {
			// The ID names another job now: not ours to watch or cancel.
			b.log.Warn("slurm: adopted job ID belongs to another job", "slurm_id", j.slurmID, "name", st.Name, "want", j.name)
			if b.finish(j, batchsystem.FinishedJob{
				ID: j.id, ExitCode: batchsystem.ExitUnavailable, Reason: batchsystem.Lost, BackingID: j.slurmID,
				Message: fmt.Sprintf("Slurm job %s is named %q, not %q: the job this ID named is gone", j.slurmID, st.Name, j.name),
			}) {
				added = true
			}
			continue
		}
		ph, knownState := classify(st.State)
		if !knownState && !j.warned {
			b.log.Warn("slurm: unknown Slurm state; treating the job as waiting", "slurm_id", j.slurmID, "state", st.State)
			j.warned = true
		}
		j.known, j.state, j.reason = true, st.State, st.Reason
		if ph != phaseFinished {
			j.phase = ph
			if ph == phaseRunning {
				j.started = true
			}
			if st.HasTimes {
				j.elapsed, j.seenAt = st.Elapsed, now
			} else if j.seenAt.IsZero() {
				// No usable TimeUsed: count from the first sighting rather
				// than from the zero time, which would read as centuries.
				j.elapsed, j.seenAt = 0, now
			}
			continue
		}
		code, reason := exitFor(st)
		msg := "Slurm job " + j.slurmID + " " + st.State
		if st.Reason != "" && st.Reason != "None" {
			msg += " (" + st.Reason + ")"
		}
		if inAcct[j.slurmID] {
			msg += ", from accounting"
		}
		fin := batchsystem.FinishedJob{ID: j.id, ExitCode: code, Reason: reason, BackingID: j.slurmID, Message: msg}
		if st.HasTimes && (j.started || st.Elapsed > 0 || ranStates[st.State]) {
			// Slurm counts whole seconds, truncated: half a second more is
			// the unbiased estimate, and never 0 for a job that ran.
			fin.WallTime = st.Elapsed + time.Second/2
		}
		if b.finish(j, fin) {
			added = true
		}
	}
	if added {
		b.signalDone()
	}
}

// ranStates are terminal states only a job whose batch script started can
// reach.
var ranStates = map[string]bool{"COMPLETED": true, "FAILED": true, "TIMEOUT": true, "OUT_OF_MEMORY": true}

// finish records a job's end; b.mu must be held. It reports whether the
// job was queued for WaitFinished (killed jobs are not).
func (b *BatchSystem) finish(j *job, fin batchsystem.FinishedJob) bool {
	if j.pilot != "" {
		if j.killed {
			close(j.stopped)
		}
		b.pilotEnded(j)
		return false
	}
	if j.killed {
		close(j.stopped)
		b.forget(j)
		return false
	}
	j.finished = &fin
	j.phase = phaseFinished
	b.done = append(b.done, j.id)
	return true
}

// markUnknown handles a job that neither squeue nor sacct lists; b.mu must
// be held. It stays issued and not running: if it never reappears, the
// leader's rescue of missing jobs takes over. A killed job that Slurm
// forgot has certainly stopped.
func (b *BatchSystem) markUnknown(j *job) {
	if j.pilot != "" && (j.killed || j.adopted) {
		// An adopted pilot Slurm no longer knows has ended long ago.
		b.finish(j, batchsystem.FinishedJob{})
		return
	}
	if j.killed {
		close(j.stopped)
		b.forget(j)
		return
	}
	if j.known || !j.warned {
		b.log.Warn("slurm: job unknown to squeue and sacct", "slurm_id", j.slurmID, "job", j.jobID)
		j.warned = true
	}
	j.known = false
	j.phase = phaseWaiting
	if j.state == "" {
		j.state = "UNKNOWN"
	}
}
