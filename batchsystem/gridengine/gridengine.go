package gridengine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
)

// BatchSystem runs gaffer jobs as Grid Engine jobs. Create it with New.
type BatchSystem struct {
	opts Options
	log  *slog.Logger
	loc  *time.Location // how qstat -xml's zone-less times are read

	mu       sync.Mutex
	nextID   batchsystem.ID
	jobs     map[batchsystem.ID]*job // issued and not yet reported, plus killed jobs not yet confirmed stopped
	byNumber map[string]batchsystem.ID
	done     []batchsystem.ID // finished, waiting for WaitFinished, oldest first
	shut     bool

	// Poller state: read and written by the poller goroutine only.
	lastAcct    time.Time // last qacct run
	lastReasons time.Time // last qstat -j run for waiting jobs' reasons
	undeleted   []string  // jobs in error state whose qdel failed, for the next poll

	complexMu sync.Mutex
	complexes map[string]complexAttr // qconf -sc, once it answered

	doneSignal chan struct{} // a job was added to done (capacity 1)
	wake       chan struct{} // a job needs polling (capacity 1)
	stopPoll   chan struct{}
	pollDone   chan struct{}
	stopCtx    context.Context // cancelled when the poller must stop mid-command
	stopCancel context.CancelFunc

	polls       atomic.Int64  // polls run, for tests and figures
	retryDelay  time.Duration // first wait before retrying qsub or qdel; doubles
	reasonEvery time.Duration // least time between two qstat -j runs for waiting jobs' reasons
}

// job is one issued (or adopted) job.
type job struct {
	id       batchsystem.ID
	number   string        // Grid Engine's job number
	jobID    string        // gaffer's job ID, for messages
	name     string        // the job name we gave it
	hrt      time.Duration // the h_rt it asked for; 0 for none
	status   string        // the status file its script writes; "" for none
	since    time.Time     // submitted; for an adopted job, adopted minus AccountingLookback
	adopted  bool
	verified bool // qstat showed our name under this number (jobs we submitted are ours)

	phase  phase
	state  string    // last qstat state; "" before the first poll that listed it
	start  time.Time // when it started, from qstat; zero if unknown
	seenAt time.Time // first poll that saw it running, when start is unknown
	polled bool      // a poll has run since the job was tracked
	warned bool      // an unknown state or a late accounting record was logged already
	goneAt time.Time // first poll that no longer listed it
	sched  string    // why it waits, from qstat -j

	finished *batchsystem.FinishedJob // set when terminal, until WaitFinished returns it
	killed   bool                     // Kill or Shutdown deleted it: never reported
	deleted  bool                     // qdel was run for it (a killed adopted job waits for its name check)
	stopped  chan struct{}            // for killed jobs: closed once it left qstat
}

// New returns a BatchSystem with the given options. It runs no Grid
// Engine command; the first qsub does.
func New(opts Options) (*BatchSystem, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &BatchSystem{
		opts:       o,
		log:        log,
		loc:        time.Local,
		nextID:     1,
		jobs:       map[batchsystem.ID]*job{},
		byNumber:   map[string]batchsystem.ID{},
		doneSignal: make(chan struct{}, 1),
		wake:       make(chan struct{}, 1),
		stopPoll:   make(chan struct{}),
		pollDone:   make(chan struct{}),
		stopCtx:    ctx,
		stopCancel: cancel,
		retryDelay: 500 * time.Millisecond,
		// The reasons change slowly, and qstat -j prints a screenful per job.
		reasonEvery: max(o.PollInterval, 30*time.Second),
	}
	go b.pollLoop()
	return b, nil
}

var (
	_ batchsystem.BatchSystem        = (*BatchSystem)(nil)
	_ batchsystem.SchedulingStatuser = (*BatchSystem)(nil)
	_ batchsystem.Adopter            = (*BatchSystem)(nil)
)

// ErrAlreadyTracked is returned by Adopt for a job this BatchSystem
// already tracks.
var ErrAlreadyTracked = errors.New("gridengine: job already tracked")

// ErrKillTimeout is matched by errors from Kill and Shutdown when deleted
// jobs did not leave qstat within KillTimeout.
var ErrKillTimeout = errors.New("gridengine: deleted jobs not confirmed stopped")

// Issue submits spec with qsub and returns once Grid Engine has accepted
// it. A request no queue can ever satisfy fails with an error matching
// batchsystem.ErrInsufficientResources (unless Options.NoVerify is set).
func (b *BatchSystem) Issue(ctx context.Context, spec batchsystem.JobSpec) (batchsystem.ID, error) {
	if err := b.checkOpen(); err != nil {
		return 0, err
	}
	since := time.Now()
	number, q, err := b.submit(ctx, spec)
	if err != nil {
		return 0, err
	}
	b.mu.Lock()
	if b.shut {
		// Shutdown began while qsub ran: do not leave the job behind.
		b.mu.Unlock()
		b.deleteQuietly(number)
		return 0, batchsystem.ErrShutdown
	}
	id := b.track(spec, number, q.hrt, since, false)
	b.mu.Unlock()
	b.log.Debug("gridengine: submitted", "id", id, "job", spec.JobID, "ge_job", number)
	return id, nil
}

// Adopt tracks a Grid Engine job submitted earlier for spec, by a leader
// that has since died, instead of submitting spec again. The returned ID
// behaves like one from Issue: the job is reported by WaitFinished when it
// ends, even if it ended before Adopt, as long as qstat lists it or qacct
// has its record.
//
// The first poll that finds the job in qstat compares its name with the
// name this BatchSystem would give spec (so Options.NamePrefix must not
// have changed). A different name means the number now belongs to someone
// else's job, for instance after the cluster's job numbers were reset (a
// new spool): the job is then reported as Lost and never deleted by this
// BatchSystem. An accounting record counts only under our name, too.
func (b *BatchSystem) Adopt(ctx context.Context, spec batchsystem.JobSpec, number string) (batchsystem.ID, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if !validJobNumber(number) {
		return 0, fmt.Errorf("%w: job %s: %q is not a Grid Engine job number", ErrBadSpec, spec.JobID, number)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.shut {
		return 0, batchsystem.ErrShutdown
	}
	if _, ok := b.byNumber[number]; ok {
		return 0, fmt.Errorf("%w: job %s: Grid Engine job %s", ErrAlreadyTracked, spec.JobID, number)
	}
	return b.track(spec, number, spec.Requirements.Walltime, time.Now().Add(-b.opts.AccountingLookback), true), nil
}

// track records a submitted job; b.mu must be held.
func (b *BatchSystem) track(spec batchsystem.JobSpec, number string, hrt time.Duration, since time.Time, adopted bool) batchsystem.ID {
	id := b.nextID
	b.nextID++
	b.jobs[id] = &job{
		id: id, number: number, jobID: spec.JobID, name: jobName(b.opts.NamePrefix, spec),
		hrt: hrt, status: statusFile(spec.Dir, number), since: since, adopted: adopted, verified: !adopted,
	}
	b.byNumber[number] = id
	b.poke()
	return id
}

// poke wakes the poller without waiting.
func (b *BatchSystem) poke() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// BackingID returns the Grid Engine job number of an issued job, for the
// leader to record so that a later leader can Adopt it.
func (b *BatchSystem) BackingID(id batchsystem.ID) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	j, ok := b.jobs[id]
	if !ok || j.killed {
		return "", false
	}
	return j.number, true
}

// Issued lists the jobs issued and not yet returned by WaitFinished.
func (b *BatchSystem) Issued(ctx context.Context) ([]batchsystem.ID, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.shut {
		return nil, batchsystem.ErrShutdown
	}
	ids := make([]batchsystem.ID, 0, len(b.jobs))
	for id, j := range b.jobs {
		if !j.killed {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// Running lists the jobs qstat showed running at the last poll, with how
// long each has run. It runs no command.
func (b *BatchSystem) Running(ctx context.Context) (map[batchsystem.ID]time.Duration, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.shut {
		return nil, batchsystem.ErrShutdown
	}
	now := time.Now()
	res := map[batchsystem.ID]time.Duration{}
	for id, j := range b.jobs {
		if j.killed || j.finished != nil || j.phase != phaseRunning {
			continue
		}
		from := j.start
		if from.IsZero() {
			from = j.seenAt
		}
		res[id] = max(0, now.Sub(from))
	}
	return res, nil
}

// WaitFinished returns the next job that ended, waiting at most maxWait.
func (b *BatchSystem) WaitFinished(ctx context.Context, maxWait time.Duration) (*batchsystem.FinishedJob, error) {
	var timeout <-chan time.Time
	if maxWait > 0 {
		t := time.NewTimer(maxWait)
		defer t.Stop()
		timeout = t.C
	}
	for {
		b.mu.Lock()
		if b.shut {
			b.mu.Unlock()
			return nil, batchsystem.ErrShutdown
		}
		for len(b.done) > 0 {
			id := b.done[0]
			b.done = b.done[1:]
			j, ok := b.jobs[id]
			if !ok || j.killed || j.finished == nil {
				continue // killed after it finished: never reported
			}
			b.forget(j)
			if len(b.done) > 0 {
				b.signalDone() // another waiter may take the next one
			}
			b.mu.Unlock()
			return j.finished, nil
		}
		b.mu.Unlock()
		if timeout == nil {
			return nil, nil
		}
		select {
		case <-b.doneSignal:
		case <-timeout:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (b *BatchSystem) signalDone() {
	select {
	case b.doneSignal <- struct{}{}:
	default:
	}
}

// forget drops j; b.mu must be held.
func (b *BatchSystem) forget(j *job) {
	delete(b.jobs, j.id)
	if b.byNumber[j.number] == j.id {
		delete(b.byNumber, j.number)
	}
}

// SchedulingStatus says what Grid Engine last said about a job that is
// not running, such as "Grid Engine job 12 is qw (waiting): cannot run in
// PE "smp" because it only offers 0 slots". It runs no command: the
// reason comes from the poller's occasional qstat -j.
func (b *BatchSystem) SchedulingStatus(id batchsystem.ID) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	j, ok := b.jobs[id]
	if !ok || j.killed || j.finished != nil || j.phase == phaseRunning {
		return ""
	}
	switch {
	case !j.polled:
		return fmt.Sprintf("Grid Engine job %s not polled yet", j.number)
	case j.phase == phaseGone:
		return fmt.Sprintf("Grid Engine job %s has left qstat; waiting for its accounting record", j.number)
	}
	s := fmt.Sprintf("Grid Engine job %s is %s (%s)", j.number, j.state, describeState(j.state))
	if j.sched != "" {
		s += ": " + j.sched
	}
	return s
}

func (b *BatchSystem) checkOpen() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.shut {
		return batchsystem.ErrShutdown
	}
	return nil
}

// run runs one command under CommandTimeout.
func (b *BatchSystem) run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, b.opts.CommandTimeout)
	defer cancel()
	return b.opts.Runner.Run(ctx, stdin, name, args...)
}

// chunks splits ids into slices of at most n.
func chunks(ids []string, n int) [][]string {
	var res [][]string
	for len(ids) > n {
		res = append(res, ids[:n:n])
		ids = ids[n:]
	}
	if len(ids) > 0 {
		res = append(res, ids)
	}
	return res
}
