package gridengine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
)

// The poller is the only code that asks Grid Engine about job status.
// Callers (Running, WaitFinished, Kill) read what it last saw, so the
// number of queries depends on the clock alone, however many jobs are
// issued and however often, or from how many goroutines, the leader asks.
// A poll, at most once per PollInterval, runs:
//
//   - one `qstat -xml`, which lists every job of the user;
//   - for jobs that left qstat, a read of the status file their script
//     wrote, and for those without one (killed by h_rt, qdel or a signal),
//     one `qacct -j <prefix>_*`, at most once per AccountingInterval,
//     searching from the earliest start among them;
//   - for jobs newly in error state (Eqw), one `qstat -j` for the reasons
//     and one `qdel`;
//   - now and then (reasonEvery), one `qstat -j` for the scheduling
//     information of the jobs that have waited longest (reasonBatch).
//
// So the qstat cost is one command per poll; the cost of qacct and qstat
// -j follows what changed.

// acctSlack widens qacct's search window before the earliest start the
// adapter knows of: the start time in the accounting file comes from the
// execution host's clock, which may be a little behind the leader's.
const acctSlack = time.Minute

// reasonBatch bounds the jobs one qstat -j asks about for reasons.
const reasonBatch = 100

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

// deleteLeftovers deletes killed adopted jobs whose name a poll just
// checked, and tries again the deletions of jobs in error state that
// failed.
func (b *BatchSystem) deleteLeftovers(ctx context.Context, checked []string) {
	deletes := append(checked, b.undeleted...)
	if len(deletes) == 0 {
		return
	}
	b.undeleted = nil
	if err := b.qdel(ctx, deletes); err != nil {
		b.log.Warn("gridengine: qdel failed; trying again next poll", "jobs", deletes, "err", err)
		b.undeleted = deletes
	}
}

// anyToWatch says whether a poll has work: a job not yet reported, or a
// deletion to try again.
func (b *BatchSystem) anyToWatch() bool {
	if len(b.undeleted) > 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, j := range b.jobs {
		if j.finished == nil {
			return true
		}
	}
	return false
}

// acctItem is a job that left qstat, waiting for its status file or its
// accounting record.
type acctItem struct {
	number, name string
	status       string    // its status file; "" for none
	from         time.Time // the earliest it can have started
}

// findings is what one qstat listing calls for beyond recording states.
type findings struct {
	deletes []string   // killed adopted jobs whose name a poll just checked
	errors  []string   // jobs newly in error state
	gone    []acctItem // jobs that left qstat
	waiting []*job     // jobs waiting, oldest first, for their reasons
}

// pollOnce runs one poll and applies what it learned.
func (b *BatchSystem) pollOnce(ctx context.Context) {
	b.polls.Add(1)
	b.mu.Lock()
	asked := make(map[batchsystem.ID]bool, len(b.jobs))
	for id, j := range b.jobs {
		if j.finished == nil {
			asked[id] = true
		}
	}
	b.mu.Unlock()
	if len(asked) == 0 {
		b.deleteLeftovers(ctx, nil)
		return
	}
	// Only jobs tracked before qstat ran are judged by its listing: a job
	// submitted while it ran may be missing from it without having ended.
	out, err := b.run(ctx, nil, "qstat", "-xml")
	if err != nil {
		b.log.Warn("gridengine: qstat failed; job states unchanged until the next poll", "err", err)
		return
	}
	listed, err := parseQstatXML(out, b.loc)
	if err != nil {
		b.log.Warn("gridengine: unreadable qstat listing; job states unchanged until the next poll", "err", err)
		return
	}
	seen := make(map[string]qstatJob, len(listed))
	for _, q := range listed {
		seen[q.Number] = q
	}
	reasonsDue := time.Since(b.lastReasons) >= b.reasonEvery
	f := b.apply(seen, asked, reasonsDue, time.Now())

	b.deleteLeftovers(ctx, f.deletes)
	if len(f.errors) > 0 {
		b.endErrors(ctx, f.errors)
	}
	if len(f.gone) > 0 {
		b.settle(ctx, f.gone)
	}
	if len(f.waiting) > 0 {
		b.lastReasons = time.Now()
		b.reasons(ctx, f.waiting)
	}
}

// apply records a qstat listing: states of the jobs it lists, the end of
// those it no longer lists. It returns what needs commands, with the
// waiting jobs only when their reasons are due.
func (b *BatchSystem) apply(seen map[string]qstatJob, asked map[batchsystem.ID]bool, reasonsDue bool, now time.Time) findings {
	var f findings
	b.mu.Lock()
	defer b.mu.Unlock()
	added := false
	for id, j := range b.jobs {
		if j.finished != nil || !asked[id] {
			continue
		}
		j.polled = true
		st, ok := seen[j.number]
		if !ok {
			if j.killed {
				close(j.stopped) // deleted, and gone from qstat: stopped
				b.forget(j)
				continue
			}
			if j.goneAt.IsZero() {
				j.goneAt = now
			}
			j.phase = phaseGone
			from := j.since
			if !j.start.IsZero() {
				from = j.start
			}
			f.gone = append(f.gone, acctItem{number: j.number, name: j.name, status: j.status, from: from})
			continue
		}
		if !j.verified {
			if st.Name != j.name {
				// The number names another job now: not ours to watch or delete.
				b.log.Warn("gridengine: adopted job number belongs to another job", "ge_job", j.number, "name", st.Name, "want", j.name)
				if j.killed {
					close(j.stopped)
					b.forget(j)
					continue
				}
				added = b.finish(j, batchsystem.FinishedJob{
					ID: j.id, ExitCode: batchsystem.ExitUnavailable, Reason: batchsystem.Lost, BackingID: j.number,
					Message: fmt.Sprintf("Grid Engine job %s is named %q, not %q: the job this number named is gone", j.number, st.Name, j.name),
				}) || added
				continue
			}
			j.verified = true
			if j.killed && !j.deleted {
				j.deleted = true
				f.deletes = append(f.deletes, j.number)
			}
		}
		ph, known := classify(st.State)
		if !known && !j.warned {
			b.log.Warn("gridengine: unknown qstat state; treating the job as waiting", "ge_job", j.number, "state", st.State)
			j.warned = true
		}
		j.goneAt = time.Time{} // a rescheduled job may come back
		j.state = st.State
		if !st.Start.IsZero() {
			j.start = st.Start
		}
		if ph == phaseRunning && j.seenAt.IsZero() {
			j.seenAt = now
		}
		if j.killed {
			j.phase = ph
			continue // deleted: waiting for it to leave qstat
		}
		if ph == phaseError && j.phase != phaseError {
			f.errors = append(f.errors, j.number)
		}
		j.phase = ph
		if ph == phaseWaiting || ph == phaseSuspended {
			if reasonsDue {
				f.waiting = append(f.waiting, j)
			}
		} else {
			j.sched = ""
		}
	}
	if added {
		b.signalDone()
	}
	slices.SortFunc(f.waiting, func(a, c *job) int { return a.since.Compare(c.since) })
	if len(f.waiting) > reasonBatch {
		f.waiting = f.waiting[:reasonBatch]
	}
	return f
}

// finish records a job's end; b.mu must be held. It reports whether the
// job was queued for WaitFinished (killed jobs are not).
func (b *BatchSystem) finish(j *job, fin batchsystem.FinishedJob) bool {
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

// settle reports the jobs that left qstat: from their status files, or
// else from accounting.
func (b *BatchSystem) settle(ctx context.Context, gone []acctItem) {
	type status struct {
		exit int
		wall time.Duration
	}
	read := map[string]status{}
	var files []string
	for _, it := range gone {
		if it.status == "" {
			continue
		}
		// A file still being written does not parse: the job's shell
		// has not exited, so qstat will list it once more or qacct will
		// tell.
		if data, err := os.ReadFile(it.status); err == nil {
			if exit, wall, ok := parseStatus(data); ok {
				read[it.number] = status{exit, wall}
				files = append(files, it.status)
			}
		}
	}
	// What the files said is in memory now: remove them before the jobs
	// are reported, so that whoever takes a report finds the file gone.
	// A leader that dies in between learns the exit from accounting.
	for _, f := range files {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			b.log.Debug("gridengine: removing a status file", "path", f, "err", err)
		}
	}
	var rest []acctItem
	b.mu.Lock()
	added := false
	for _, it := range gone {
		id, ok := b.byNumber[it.number]
		if !ok {
			continue
		}
		j := b.jobs[id]
		if j.finished != nil || j.killed || j.phase != phaseGone {
			continue
		}
		if st, ok := read[it.number]; ok {
			r := acctRecord{Number: it.number, Exit: st.exit, Wall: st.wall, HasWall: true, Started: true}
			code, reason, msg := exitFor(r, j.hrt)
			// date +%s counts whole seconds: half a second more is the
			// unbiased estimate, and never 0 for a job that ran.
			added = b.finish(j, batchsystem.FinishedJob{ID: j.id, ExitCode: code, Reason: reason, BackingID: j.number,
				Message: msg, WallTime: st.wall + time.Second/2}) || added
			continue
		}
		if b.opts.Accounting == AccountingNone {
			added = b.finish(j, batchsystem.FinishedJob{
				ID: j.id, ExitCode: batchsystem.ExitUnavailable, Reason: batchsystem.Finished, BackingID: j.number,
				Message: fmt.Sprintf("Grid Engine job %s left qstat without a status file; accounting is off, so its exit status is unknown", j.number),
			}) || added
			continue
		}
		rest = append(rest, it)
	}
	if added {
		b.signalDone()
	}
	b.mu.Unlock()
	if len(rest) > 0 && time.Since(b.lastAcct) >= b.opts.AccountingInterval {
		b.lastAcct = time.Now()
		b.account(ctx, rest)
	}
}

// account runs one qacct for the jobs that left qstat and reports those it
// has records for. A job with no record yet waits for the next qacct (the
// qmaster writes records in batches); one with none after AccountingWait
// is reported lost.
func (b *BatchSystem) account(ctx context.Context, items []acctItem) {
	from := items[0].from
	for _, it := range items[1:] {
		if it.from.Before(from) {
			from = it.from
		}
	}
	// One query for all: every job of ours that started since the
	// earliest of them. -b keeps it to what changed lately, and the name
	// pattern to this BatchSystem's jobs.
	out, err := b.run(ctx, nil, "qacct", "-b", qacctTime(from.Add(-acctSlack).In(b.loc)), "-j", b.opts.NamePrefix+"_*")
	if err != nil && !noRecords(err) {
		b.log.Warn("gridengine: qacct failed; jobs that left qstat stay issued until the next try", "err", err)
		return
	}
	recs, errs := parseQacct(string(out))
	for _, e := range errs {
		b.log.Warn("gridengine: ignoring qacct record", "err", e)
	}
	last := map[string]acctRecord{}
	for _, r := range recs {
		if r.final() {
			last[r.Number+"\x00"+r.Name] = r // later records are later runs
		}
	}
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	added := false
	for _, it := range items {
		id, ok := b.byNumber[it.number]
		if !ok {
			continue
		}
		j := b.jobs[id]
		if j.finished != nil || j.killed || j.phase != phaseGone {
			continue // reported, deleted or back in qstat since
		}
		r, ok := last[it.number+"\x00"+it.name]
		if !ok {
			if now.Sub(j.goneAt) < b.opts.AccountingWait {
				continue
			}
			added = b.finish(j, batchsystem.FinishedJob{
				ID: j.id, ExitCode: batchsystem.ExitUnavailable, Reason: batchsystem.Lost, BackingID: j.number,
				Message: fmt.Sprintf("Grid Engine job %s left qstat %s ago and qacct has no record of it (deleted before it started, or accounting is off or late)",
					j.number, now.Sub(j.goneAt).Round(time.Second)),
			}) || added
			continue
		}
		code, reason, msg := exitFor(r, j.hrt)
		fin := batchsystem.FinishedJob{ID: j.id, ExitCode: code, Reason: reason, BackingID: j.number, Message: msg}
		if r.Started && r.HasWall {
			// qacct counts whole seconds, truncated: half a second more
			// is the unbiased estimate, and never 0 for a job that ran.
			fin.WallTime = r.Wall + time.Second/2
		}
		added = b.finish(j, fin) || added
	}
	if added {
		b.signalDone()
	}
}

// noRecords tells qacct's failures that mean "nothing matched": no job of
// the pattern in the window, or no job ever finished on the cluster (the
// accounting file does not exist yet).
func noRecords(err error) bool {
	msg := stderrOf(err)
	return strings.Contains(msg, "not found") || strings.Contains(msg, "No such file or directory")
}

// endErrors reports the jobs in error state as failed, with the reasons
// qstat -j gives, and deletes them: a job in Eqw stays in qstat until
// someone clears or deletes it, and gaffer retries the job itself.
func (b *BatchSystem) endErrors(ctx context.Context, numbers []string) {
	details := map[string]jobDetail{}
	for _, chunk := range chunks(numbers, b.opts.MaxIDsPerQuery) {
		out, err := b.run(ctx, nil, "qstat", "-j", strings.Join(chunk, ","))
		if err != nil {
			b.log.Warn("gridengine: qstat -j for jobs in error state failed", "jobs", chunk, "err", err)
		}
		for n, d := range parseQstatJ(string(out)) {
			details[n] = d
		}
	}
	if err := b.qdel(ctx, numbers); err != nil {
		b.log.Warn("gridengine: deleting jobs in error state failed; trying again next poll", "jobs", numbers, "err", err)
		b.undeleted = append(b.undeleted, numbers...)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	added := false
	for _, n := range numbers {
		id, ok := b.byNumber[n]
		if !ok {
			continue
		}
		j := b.jobs[id]
		if j.finished != nil || j.killed {
			continue
		}
		msg := fmt.Sprintf("Grid Engine job %s was in error state (%s)", n, j.state)
		if d := details[n]; len(d.Errors) > 0 {
			msg += ": " + clip(strings.Join(d.Errors, "; "), 500)
		}
		msg += "; deleted it"
		added = b.finish(j, batchsystem.FinishedJob{
			ID: j.id, ExitCode: batchsystem.ExitUnavailable, Reason: batchsystem.Error, BackingID: n, Message: msg,
		}) || added
	}
	if added {
		b.signalDone()
	}
}

// reasons asks qstat -j why the given jobs wait, for SchedulingStatus.
func (b *BatchSystem) reasons(ctx context.Context, waiting []*job) {
	b.mu.Lock()
	numbers := make([]string, 0, len(waiting))
	for _, j := range waiting {
		numbers = append(numbers, j.number)
	}
	b.mu.Unlock()
	out, err := b.run(ctx, nil, "qstat", "-j", strings.Join(numbers, ","))
	if err != nil && len(out) == 0 {
		b.log.Debug("gridengine: qstat -j for waiting jobs failed", "err", err)
		return
	}
	details := parseQstatJ(string(out))
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, n := range numbers {
		if id, ok := b.byNumber[n]; ok {
			if d, ok := details[n]; ok {
				b.jobs[id].sched = clip(strings.Join(d.Sched, "; "), 300)
			}
		}
	}
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
