package gaffer

import (
	"fmt"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/jobstore"
)

// The life of one attempt in the graph:
//
//	issueRoom, pickIssue  ready jobs are taken for issue, within
//	                      Config.MaxIssued and the category limits
//	newAttempt            the attempt gets its issue number
//	issuedAs              the batch system took it (or issueFailed,
//	                      requeue: it did not)
//	attemptEnded          it ended: success (its result stored, its new
//	                      jobs ingested) or a failure (retried or total)
//	killAttempt           it is to be killed (cancelled, rescued)
//
// track and untrack keep the issued index, the only record of what is
// issued.

// issuedAttempt is an entry of the issued index: the job, and when its
// attempt was issued (UnixNano on the graph's clock), for its record.
type issuedAttempt struct {
	j  *ljob
	at int64
}

// attempt names one attempt of a job as the transports and the batch
// system know it: the issue (epoch and number) that names its files, and
// the batch system's ID once issued.
type attempt struct {
	job        JobID
	epoch, seq uint64
	bs         batchsystem.ID
	route      uint8 // the batch system bs is an ID of (graph.routes)
	service    bool
}

// attemptOf returns j's latest attempt. An adopted job's attempt keeps
// the epoch of the leader that issued it, which its files carry.
func (g *graph) attemptOf(j *ljob) attempt {
	epoch := g.epoch
	if b := j.extra().backing; b.id != "" {
		epoch = b.epoch
	}
	return attempt{job: j.id, epoch: epoch, seq: j.seq, bs: j.bsID, route: j.route, service: j.svc() != nil}
}

// event is one attempt's end: reported by the batch system, found in a
// job folder on resume, or made up by the leader (a job it could not
// issue, a job it rescued).
type event struct {
	j         *ljob
	fin       *batchsystem.FinishedJob
	out       *outcome
	msg       string // failure made up by the leader
	logTail   string // the worker's log, when it left no result
	log       string // where the transport kept the attempt's log, if it did
	permanent bool
}

// issueRoom is how many ready jobs may be issued now: services do not
// count against maxIssued (they have their own caps, and if they took
// places here the jobs using them could wait forever behind them), and
// issueCap, when not negative, caps the turn.
func (g *graph) issueRoom(maxIssued, issueCap int) int {
	room := g.readyLen()
	if maxIssued > 0 {
		room = min(room, maxIssued-(len(g.issued)-g.issuedSvcs))
	}
	if issueCap >= 0 {
		room = min(room, issueCap)
	}
	return room
}

// pickIssue takes up to room ready jobs (at most a batch of 4096) for
// issue. A job whose category is at its limit waits in the category's
// queue instead; a job taken holds its places in its categories until
// its attempt is untracked or given back.
func (g *graph) pickIssue(room int) []*ljob {
	batch := make([]*ljob, 0, min(room, 4096))
	for len(batch) < cap(batch) {
		j := g.popReady()
		if j == nil {
			break
		}
		if !g.cats.admit(j) {
			continue // waits for its category; released by unreserve
		}
		batch = append(batch, j)
	}
	return batch
}

// newAttempt numbers j's next attempt.
func (g *graph) newAttempt(j *ljob) attempt {
	g.nextSeq++
	j.seq = g.nextSeq
	return attempt{job: j.id, epoch: g.epoch, seq: j.seq, route: j.route, service: j.svc() != nil}
}

// issuedAs records that the batch system took j's attempt as id. backing is
// the backing scheduler's ID, for a batch system whose jobs outlive their
// leader: it is saved with the job (plan.mustSave sets how soon).
func (g *graph) issuedAs(j *ljob, id batchsystem.ID, backing string) {
	if backing != "" {
		j.ext().backing = backingRef{epoch: g.epoch, seq: j.seq, id: backing}
		g.touch(j)
		g.plan.backings++
	}
	g.track(j, id)
}

// issueFailed gives back a job picked for issue that never reached the
// batch system, charging it a failed attempt.
func (g *graph) issueFailed(j *ljob, msg string, permanent bool) {
	g.unreserve(j)
	g.attemptEnded(&event{j: j, msg: msg, permanent: permanent})
}

// requeue gives back a job picked for issue, charging nothing: the
// leader is stopping, and a later one issues it.
func (g *graph) requeue(j *ljob) {
	g.unreserve(j)
	g.makeReady(j)
}

func (g *graph) track(j *ljob, id batchsystem.ID) {
	j.where, j.bsID = isIssued, id
	at := g.now().UnixNano()
	g.issued[j.key()] = issuedAttempt{j: j, at: at}
	if j.svc() != nil {
		g.issuedSvcs++
	}
	if g.notes {
		g.plan.issued = append(g.plan.issued, issuedNote{bs: id, route: j.route, kind: j.kind, req: *j.req, job: j.id, n: j.tries + 1, cats: j.extra().categories, at: at})
	}
}

// untrack forgets an issued attempt that ended or is killed: wall is its
// run time if known, ok whether it succeeded. What the transport holds
// for it is forgotten after the next commit.
func (g *graph) untrack(j *ljob, wall time.Duration, ok bool) {
	if j.where != isIssued {
		return
	}
	g.plan.forget = append(g.plan.forget, g.attemptOf(j))
	k := j.key()
	delete(g.issued, k)
	delete(g.missing, k)
	if j.svc() != nil {
		g.issuedSvcs--
	}
	j.where, j.bsID = nowhere, 0
	if g.notes {
		g.plan.done = append(g.plan.done, doneNote{bs: k.id, route: k.route, wall: wall, ok: ok})
	}
	g.unreserve(j)
}

// killAttempt untracks j's issued attempt and has the leader kill it.
func (g *graph) killAttempt(j *ljob) {
	if j.where != isIssued {
		return
	}
	rec := g.newRecord(j, nil)
	rec.Reason, rec.Error = batchsystem.Killed.String(), "killed by the leader"
	g.plan.attempts = append(g.plan.attempts, rec)
	g.plan.kill = append(g.plan.kill, g.attemptOf(j))
	g.untrack(j, 0, false)
}

// isIssued reports whether a is still the issued attempt of its job.
func (g *graph) isIssued(a attempt) bool {
	j := g.jobs.get(a.job)
	return j != nil && j.where == isIssued && j.seq == a.seq && j.state == jobstore.StatePending
}

// idle reports whether nothing is issued, ready or in backoff.
func (g *graph) idle() bool {
	return len(g.issued) == 0 && g.readyLen() == 0 && g.backoff.Len() == 0
}

// attemptEnded applies the end of an attempt, records it, and returns
// the failure it charged ("" for a success, or an event that changed
// nothing).
func (g *graph) attemptEnded(e *event) string {
	if e.j.state != jobstore.StatePending {
		if e.fin != nil {
			g.untrack(e.j, e.fin.WallTime, e.fin.ExitCode == 0)
		}
		return "" // settled meanwhile (skipped, cancelled)
	}
	rec := g.newRecord(e.j, e)
	if x := e.j.x; x != nil && x.deaths != 0 {
		x.deaths = 0 // it ended: the leader deaths were not in a row
		g.touch(e.j)
	}
	msg := g.applyEnd(e)
	rec.OK = msg == "" && e.out != nil && e.out.OK
	if !rec.OK {
		rec.Error = msg
	}
	g.plan.attempts = append(g.plan.attempts, rec)
	return msg
}

// newRecord starts the record of j's attempt, which e ended (nil: it is
// being killed).
func (g *graph) newRecord(j *ljob, e *event) jobstore.Attempt {
	a := g.attemptOf(j)
	rec := jobstore.Attempt{
		Job: j.id, N: int(j.tries) + 1, Epoch: a.epoch, Seq: a.seq,
		Kind: j.kind, Name: j.extra().name, Preds: j.preds, Requirements: *j.req,
		Backing: j.extra().backing.id, End: g.now(), BatchSystem: g.routes.name(j.route),
	}
	g.plan.noteCategories(&rec, j.extra().categories)
	if is, ok := g.issued[j.key()]; ok && j.where == isIssued {
		rec.BatchID, rec.Start = strconv.FormatInt(int64(j.bsID), 10), time.Unix(0, is.at)
	}
	if e == nil {
		return rec
	}
	rec.Log = e.log
	switch {
	case e.fin != nil:
		rec.Reason, rec.ExitCode, rec.Wall, rec.Node = e.fin.Reason.String(), e.fin.ExitCode, e.fin.WallTime, e.fin.Node
		if e.fin.BackingID != "" {
			rec.Backing = e.fin.BackingID
		}
	case e.out != nil:
		rec.Reason = batchsystem.Finished.String() // found after its leader stopped
	default:
		rec.Reason, rec.ExitCode = "not issued", -1
	}
	if o := e.out; o != nil {
		if !o.Started.IsZero() {
			rec.Start = o.Started
		}
		if !o.Ended.IsZero() {
			rec.End = o.Ended
		}
		rec.CPU, rec.MaxRSS = o.CPU, o.MaxRSS
	}
	if rec.Wall == 0 && !rec.Start.IsZero() {
		rec.Wall = rec.End.Sub(rec.Start)
	}
	return rec
}

// applyEnd is attemptEnded's transition.
func (g *graph) applyEnd(e *event) string {
	j := e.j
	if e.fin != nil {
		g.untrack(j, e.fin.WallTime, e.fin.ExitCode == 0)
	}
	sv := j.svc()
	if e.out != nil && e.out.OK {
		if sv == nil {
			return g.succeed(j, e.out)
		}
		if sv.phase == svcStopping {
			g.serviceEnded(j)
			return ""
		}
		e.out.OK, e.out.Error = false, "the service ended before it was told to stop"
	}
	msg, tail, permanent := failureOf(e)
	if e.fin != nil && e.fin.Reason == batchsystem.MemLimit {
		msg = g.moreMemory(j, msg)
	}
	g.plan.failed++
	if sv != nil && sv.phase != svcStarting {
		// A service is retried only until it starts: its users may hold
		// its old value already.
		j.tries++
		x := j.ext()
		x.logTail, x.backing = tail, backingRef{}
		if sv.phase == svcRunning {
			msg = "the service failed while running: " + msg
		} else {
			msg = "the service failed while stopping: " + msg
		}
		g.serviceFailed(j, msg)
		return msg
	}
	g.attemptFailed(j, msg, tail, permanent)
	return msg
}

// failureOf says, for a person, why an attempt failed.
func failureOf(e *event) (msg, tail string, permanent bool) {
	msg, tail, permanent = e.msg, e.logTail, e.permanent
	switch {
	case e.out == nil && e.msg != "":
		// The leader's own word: not issued, or a result it could not read.
	case e.out != nil:
		msg, tail, permanent = e.out.Error, e.out.LogTail, e.out.Permanent
		if e.fin != nil && e.fin.Reason != batchsystem.Finished && e.fin.Reason != 0 {
			// Keep the batch system's reason (a time limit, a lost node):
			// the job's own error may only say it was stopped.
			msg += fmt.Sprintf(" [batch system: %s", e.fin.Reason)
			if e.fin.Message != "" {
				msg += ": " + e.fin.Message
			}
			msg += "]"
		}
	case e.fin != nil && e.fin.ExitCode == 0:
		msg = "the job exited 0 but its result never reached the leader (reason " + batchsystem.Partition.String() + ")"
	case e.fin != nil:
		msg = fmt.Sprintf("exit code %d (%s)", e.fin.ExitCode, e.fin.Reason)
		if e.fin.Message != "" {
			msg += ": " + e.fin.Message
		}
	}
	return msg, tail, permanent
}

// succeed takes a body's success: its new jobs join the graph, its
// result is stored, and the job moves on to its services or successors.
// A bad fragment or result fails the job for good, leaving the graph as
// it was.
func (g *graph) succeed(j *ljob, out *outcome) string {
	value := []byte(out.Result)
	fail := func(msg string) string {
		g.attemptFailed(j, msg, out.LogTail, true)
		return msg
	}
	if f := out.Graph; f != nil && len(f.Jobs) > 0 {
		// The jobs are in the graph after this; drop the fragment before
		// the commit, which needs memory of its own.
		out.Graph = nil
		if err := f.validate(j.display()); err != nil {
			return fail(err.Error())
		}
		var err error
		if _, value, err = g.ingest(f, j, value); err != nil {
			return fail(err.Error())
		}
		if len(f.Jobs) >= hugeFragment {
			// The fragment and the inputs ingest rewrote are garbage
			// now, as big as what the commit is about to build: collect
			// them first, so that the heap does not grow to twice both.
			f = nil
			debug.FreeOSMemory()
		}
	} else if hasPromises(value) {
		var err error
		if value, err = rewriteTemps(value, nil); err != nil {
			return fail(fmt.Sprintf("%v: job %s: result: %v", ErrBadInput, j.display(), err))
		}
	}
	g.plan.results = append(g.plan.results, result{id: j.id, value: value})
	if hasPromises(value) {
		g.holdForever(value)
	}
	if !j.checkpoint {
		g.doneReading(j) // a checkpoint may run again: it reads until it is gone
	}
	g.plan.succeed++
	g.bodyDone(j)
	return ""
}

// leftover takes a result that a worker of an earlier leader wrote while
// no leader ran, for the attempt the job is at: a job that finished then
// is not run again. It reports whether it took it.
func (g *graph) leftover(out *outcome) bool {
	j := g.jobs.get(out.Job)
	if j == nil || j.state != jobstore.StatePending || j.svc() != nil || j.where == isIssued ||
		out.Attempt != int(j.tries)+1 || out.Epoch >= g.epoch {
		return false
	}
	if j.where == inReady {
		j.where = nowhere // its ready-queue entry goes stale
	}
	g.plan.forget = append(g.plan.forget, attempt{job: j.id, epoch: out.Epoch, seq: out.Seq, route: j.route})
	g.attemptEnded(&event{j: j, out: out})
	return true
}

// keepsFolder reports whether job id may still use what its attempts
// left (a pending job's folder); others' are left over.
func (g *graph) keepsFolder(id JobID) bool {
	j := g.jobs.get(id)
	return j != nil && j.state == jobstore.StatePending
}

// toAdopt lists the jobs an earlier leader issued to a batch system whose
// jobs outlive it, and numbers each one's attempt as that leader did.
// Services are started again instead: the old instance stops when a new
// one takes over its folder.
func (g *graph) toAdopt() []*ljob {
	var out []*ljob
	for _, j := range g.jobs.all() {
		x := j.extra()
		if j.state != jobstore.StatePending || x.backing.id == "" || j.where == isIssued {
			continue
		}
		if x.svc != nil {
			x.backing = backingRef{}
			continue
		}
		j.seq = x.backing.seq
		out = append(out, j)
	}
	return out
}

// adopted records that the batch system took over j's running attempt as
// id; notAdopted, that it would not (the job is issued again).
func (g *graph) adopted(j *ljob, id batchsystem.ID) { g.track(j, id) }

func (g *graph) notAdopted(j *ljob) { j.ext().backing = backingRef{}; j.compact() }

// forgetBackings clears the backing IDs of the jobs still issued, which
// the leader has just killed: a later leader must issue them again, not
// adopt jobs that are gone.
func (g *graph) forgetBackings() {
	for _, is := range g.issued {
		if x := is.j.x; x != nil && x.backing.id != "" {
			x.backing = backingRef{}
			g.touch(is.j)
		}
	}
}

// rescue finds the issued attempts that batch system route lost or that
// ran too long (toil-brief 2.8), kills them and charges each a failed
// attempt (retried if it has tries left). listed is what the batch system
// lists as issued; running, how long each running job has run (nil: not
// asked). Attempts on other batch systems are left alone.
//
//   - a job missing from listed for missingChecks checks in a row is
//     lost by the batch system, or unknown to a scheduler that forgot it;
//   - a job running longer than maxDuration (if positive) is over-long;
//     services are exempt: they live as long as their client's subtree.
//
// It returns what it rescued, with why.
func (g *graph) rescue(route uint8, listed []batchsystem.ID, running map[batchsystem.ID]time.Duration, missingChecks int, maxDuration time.Duration) []event {
	known := make(map[batchsystem.ID]bool, len(listed))
	for _, id := range listed {
		known[id] = true
	}
	var out []event
	for k, is := range g.issued {
		if k.route != route {
			continue
		}
		j, id := is.j, k.id
		var fin *batchsystem.FinishedJob
		if known[id] {
			delete(g.missing, k)
		} else {
			g.missing[k]++
			if n := g.missing[k]; n >= missingChecks {
				fin = &batchsystem.FinishedJob{ID: id, ExitCode: batchsystem.ExitUnavailable, Reason: batchsystem.Missing,
					Message: fmt.Sprintf("the batch system stopped listing the job for %d checks", n)}
			}
		}
		if d, ok := running[id]; ok && maxDuration > 0 && d > maxDuration && j.svc() == nil {
			fin = &batchsystem.FinishedJob{ID: id, ExitCode: 1, Reason: batchsystem.MaxJobDuration, WallTime: d,
				Message: fmt.Sprintf("ran %s, longer than the maximum job duration of %s", d.Round(time.Millisecond), maxDuration)}
		}
		if fin != nil {
			out = append(out, event{j: j, fin: fin})
		}
	}
	for i := range out {
		j := out[i].j
		g.plan.kill = append(g.plan.kill, g.attemptOf(j))
		// A rescued attempt's time says nothing of the job's.
		g.untrack(j, 0, false)
		g.attemptEnded(&out[i])
	}
	return out
}

// onlyServicesRun returns the running services if every running job is a
// started service, and nil otherwise: running is the batch systems' list.
func (g *graph) onlyServicesRun(running map[issueKey]time.Duration) []*ljob {
	svcs := make([]*ljob, 0, len(running))
	for k := range running {
		j := g.issued[k].j
		if j == nil || j.svc() == nil || j.svc().phase != svcRunning {
			return nil
		}
		svcs = append(svcs, j)
	}
	return svcs
}
