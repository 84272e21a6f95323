package gaffer

import (
	"strings"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/jobstore"
)

// Metrics receives what a leader does: each attempt issued, each attempt
// ended as the store recorded it, each commit with the queues' lengths
// after it. Set it in Config.Metrics; nil costs one nil check per
// commit.
//
// The package metrics keeps the usual views of these events (totals, by
// job type, by node, and over time in blocks); metrics/prometheus and
// metrics/otel export them to Prometheus and OpenTelemetry. Tee one
// receiver to several with metrics.Tee.
//
// The leader calls a receiver on its own goroutine, while it holds the
// lock that Status, Stats and Why wait for, once it has applied the plan
// that made the events (plan.go): after the commit that recorded them, or,
// for issues that wrote nothing to the store, after the issue. So a receiver must be quick (add to counters, or
// hand the event to another goroutine) and must not call the Leader back.
// One leader calls it from one goroutine at a time; a receiver shared by
// several leaders must be safe for concurrent use.
//
// Events are passed by value; a receiver may keep them. A zero field
// means "unknown" unless its comment says otherwise.
//
// The batch system interface reports no starts: an attempt's start is
// known when it ends (AttemptEnded.Start), and the time from issue to
// start is AttemptEnded.Start minus AttemptIssued.Time.
type Metrics interface {
	// AttemptIssued reports an attempt handed to the batch system (or
	// adopted from an earlier leader's batch system). The store records
	// an issue only when the batch system has a backing ID for it.
	AttemptIssued(AttemptIssued)
	// AttemptEnded reports an attempt's end, as recorded in the store
	// (jobstore.Attempt): success, failure, rescue, or a kill by the
	// leader (a cancel).
	AttemptEnded(AttemptEnded)
	// Committed reports a store transaction that recorded job events,
	// after the attempts it recorded were reported.
	Committed(Commit)
}

// AttemptIssued is one attempt handed to the batch system.
type AttemptIssued struct {
	Time    time.Time // when the batch system took it (the leader's clock, or the batch system's if it keeps its own)
	Job     JobID
	Kind    string // the job's type
	Attempt int    // 1 for the job's first attempt; more is a retry
	// Category is the job's categories (the Category option), joined by
	// ","; "" for a job with none (not "unknown").
	Category    string
	BatchSystem string         // the batch system's name (its Go type when it gives none)
	BatchID     batchsystem.ID // the attempt's ID in the batch system
	// Requirements are the job's, defaults filled in (never zero).
	Requirements Requirements
}

// Retry reports whether the attempt is a retry (attempt 2 or later).
func (e AttemptIssued) Retry() bool { return e.Attempt > 1 }

// AttemptEnded is one attempt's end, as its record in the store
// (jobstore.Attempt) holds it.
type AttemptEnded struct {
	Job      JobID
	Kind     string
	Attempt  int    // 1 for the job's first attempt
	Category string // as in AttemptIssued
	// BatchSystem is as in AttemptIssued; Node is the machine that ran
	// the attempt, as the batch system names it (the local batch system:
	// this host's name); "" when it does not say.
	BatchSystem, Node string

	// Start is when the attempt started (the worker's clock), or, when
	// that is not known, when it was issued; End when it ended. Wall is
	// its run time (the batch system's figure, or End-Start), CPU its CPU
	// time (user and system) and MaxRSS its peak resident memory in
	// bytes, as the worker measured them: CPU and MaxRSS are 0 for an
	// attempt that ran in the leader's process, or left no result.
	Start, End time.Time
	Wall, CPU  time.Duration
	MaxRSS     int64

	// OK: the attempt succeeded (for a service: it ran and stopped when
	// told to). ExitCode is the worker's exit code (0 when it ran
	// in-process, -1 for an attempt that was never issued,
	// batchsystem.ExitUnavailable when the batch system does not know).
	// Reason says how it ended: a batchsystem.ExitReason's name
	// ("finished", "failed", "lost", "killed", "memlimit", "missing", ...)
	// or "not issued"; "killed" with OK false and ExitCode 0 is the
	// leader's kill (a cancel). Error is the failure, for a person; ""
	// when OK.
	OK       bool
	ExitCode int
	Reason   string
	Error    string
	// Rescued: the leader's rescue ended the attempt: the batch system
	// lost it ("missing") or it ran longer than Config.MaxJobDuration
	// ("maxjobduration").
	Rescued bool
}

// Commit is one store transaction that recorded job events, and where
// the workflow stands after it.
type Commit struct {
	Time    time.Time // when it committed (the leader's clock)
	Commits int       // transactions committed by this leader so far, this one included (Stats.Commits)
	// What it recorded: attempts that ended (reported just before), job
	// bodies that succeeded, attempts that failed (the leader's kills not
	// included).
	Ended, Succeeded, Failed int
	// Status is the workflow's after the commit: the lengths of the
	// leader's queues (ready, issued, in backoff) and the live jobs.
	Status Status
}

// report hands plan p, just committed, to the metrics receiver.
func (l *Leader) report(p *plan) {
	m := l.cfg.Metrics
	for i := range p.issued {
		n := &p.issued[i]
		m.AttemptIssued(AttemptIssued{
			Time: time.Unix(0, n.at), Job: n.job, Kind: n.kind, Attempt: int(n.n), Category: categoryLabel(n.cats),
			BatchSystem: l.routeName(n.route), BatchID: n.bs, Requirements: l.cfg.fill(n.req),
		})
	}
	for i := range p.attempts {
		a := &p.attempts[i]
		m.AttemptEnded(AttemptEnded{
			Job: a.Job, Kind: a.Kind, Attempt: a.N, Category: categoryLabel(p.cats[attemptRef{a.Job, a.Epoch, a.Seq}]),
			BatchSystem: a.BatchSystem, Node: a.Node,
			Start: a.Start, End: a.End, Wall: a.Wall, CPU: a.CPU, MaxRSS: a.MaxRSS,
			OK: a.OK, ExitCode: a.ExitCode, Reason: a.Reason, Error: a.Error,
			Rescued: a.Reason == rescuedMissing || a.Reason == rescuedLong,
		})
	}
	if !p.writes() {
		return // nothing was committed
	}
	m.Committed(Commit{
		Time: l.g.now(), Commits: l.stats.Commits,
		Ended: len(p.attempts), Succeeded: p.succeed, Failed: p.failed,
		Status: l.status(),
	})
}

// The reasons the leader's rescue gives (graph.rescue).
var (
	rescuedMissing = batchsystem.Missing.String()
	rescuedLong    = batchsystem.MaxJobDuration.String()
)

// attemptRef names one attempt in a plan.
type attemptRef struct {
	job        JobID
	epoch, seq uint64
}

// noteCategories keeps, for the metrics, the categories of the job whose
// attempt rec is recorded: the job may be gone from the graph by the
// commit. Jobs without categories cost nothing.
func (p *plan) noteCategories(rec *jobstore.Attempt, cats string) {
	if cats == "" {
		return
	}
	if p.cats == nil {
		p.cats = map[attemptRef]string{}
	}
	p.cats[attemptRef{rec.Job, rec.Epoch, rec.Seq}] = cats
}

// categoryLabel turns the graph's NUL-joined categories into the events'
// comma-joined ones.
func categoryLabel(cats string) string {
	if cats == "" {
		return ""
	}
	return strings.ReplaceAll(cats, "\x00", ",")
}
