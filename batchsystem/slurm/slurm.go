package slurm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/batchsystem/pilot"
)

// BatchSystem runs gaffer jobs as Slurm batch jobs. Create it with New.
type BatchSystem struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	nextID  batchsystem.ID
	jobs    map[batchsystem.ID]*job // issued and not yet reported, plus killed jobs not yet confirmed stopped
	bySlurm map[string]batchsystem.ID
	done    []batchsystem.ID // finished, waiting for WaitFinished, oldest first
	shut    bool

	doneSignal chan struct{} // a job was added to done (capacity 1)
	wake       chan struct{} // a job needs polling (capacity 1)
	stopPoll   chan struct{}
	pollDone   chan struct{}
	stopCtx    context.Context // cancelled when the poller must stop mid-command
	stopCancel context.CancelFunc

	polls atomic.Int64 // query sets run, for tests and figures

	// Grouping (group.go).
	owner      string // names this adapter's queue, tickets and pilots
	ticketSeq  int64
	pilotSeq   int64
	members    map[batchsystem.ID]*member // grouped jobs, issued and not yet reported
	byTicket   map[string]*member
	pilots     map[string]*pilotRec
	shapes     map[string]*shapeState // by root|shape
	roots      map[string]bool        // queue roots whose earlier pilots were adopted
	groupWake  chan struct{}
	groupDone  chan struct{}
	retryDelay time.Duration // first wait before retrying sbatch; doubles
}

// job is one issued (or adopted) job.
type job struct {
	id      batchsystem.ID
	slurmID string
	jobID   string    // gaffer's job ID, for messages
	name    string    // the Slurm job name we gave it
	since   time.Time // submitted; for an adopted job, adopted minus the sacct lookback
	adopted bool
	pilot   string // a pilot's name: watched, never reported to the leader

	phase   phase
	state   string        // last Slurm state seen; "" before the first poll
	reason  string        // last squeue reason
	elapsed time.Duration // run time Slurm reported at seenAt
	seenAt  time.Time
	known   bool // the last successful poll found the job
	started bool // a poll saw it running
	warned  bool // an unknown state or a missing job was logged already

	finished *batchsystem.FinishedJob // set when terminal, until WaitFinished returns it
	killed   bool                     // Kill or Shutdown cancelled it: never reported
	stopped  chan struct{}            // for killed jobs: closed once Slurm shows it stopped
}

// New returns a BatchSystem with the given options. It runs no Slurm
// command; the first sbatch does.
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
		nextID:     1,
		jobs:       map[batchsystem.ID]*job{},
		bySlurm:    map[string]batchsystem.ID{},
		doneSignal: make(chan struct{}, 1),
		wake:       make(chan struct{}, 1),
		stopPoll:   make(chan struct{}),
		pollDone:   make(chan struct{}),
		stopCtx:    ctx,
		stopCancel: cancel,
		retryDelay: 500 * time.Millisecond,
		owner:      newOwner(),
		members:    map[batchsystem.ID]*member{},
		byTicket:   map[string]*member{},
		pilots:     map[string]*pilotRec{},
		shapes:     map[string]*shapeState{},
		roots:      map[string]bool{},
		groupWake:  make(chan struct{}, 1),
		groupDone:  make(chan struct{}),
	}
	go b.pollLoop()
	go b.groupLoop()
	return b, nil
}

var _ batchsystem.BatchSystem = (*BatchSystem)(nil)
var _ batchsystem.SchedulingStatuser = (*BatchSystem)(nil)
var _ batchsystem.Adopter = (*BatchSystem)(nil)
var _ batchsystem.Releaser = (*BatchSystem)(nil)

// ErrAlreadyTracked is returned by Adopt for a Slurm job this BatchSystem
// already tracks.
var ErrAlreadyTracked = errors.New("slurm: Slurm job already tracked")

// ErrKillTimeout is matched by errors from Kill and Shutdown when Slurm did
// not confirm within KillTimeout that cancelled jobs stopped.
var ErrKillTimeout = errors.New("slurm: cancelled jobs not confirmed stopped")

// Issue submits spec with sbatch and returns once Slurm has accepted it.
// A request Slurm refuses as impossible (more cores or memory than any
// node of the partition has) fails with an error matching
// batchsystem.ErrInsufficientResources.
func (b *BatchSystem) Issue(ctx context.Context, spec batchsystem.JobSpec) (batchsystem.ID, error) {
	if err := b.checkOpen(); err != nil {
		return 0, err
	}
	if b.grouped(spec) {
		id, err := b.issueGrouped(spec)
		if !errors.Is(err, errSolo) {
			return id, err
		}
	}
	since := time.Now()
	slurmID, err := b.submit(ctx, spec)
	if err != nil {
		return 0, err
	}
	b.mu.Lock()
	if b.shut {
		// Shutdown began while sbatch ran: do not leave the job behind.
		b.mu.Unlock()
		b.cancelQuietly(slurmID)
		return 0, batchsystem.ErrShutdown
	}
	id := b.track(spec, slurmID, since, false)
	b.mu.Unlock()
	b.log.Debug("slurm: submitted", "id", id, "job", spec.JobID, "slurm_id", slurmID)
	return id, nil
}

// Adopt tracks a Slurm job submitted earlier for spec, by a leader that
// has since died, instead of submitting spec again. The returned ID behaves
// like one from Issue: the job is reported by WaitFinished when it ends,
// even if it ended before Adopt. A job Slurm no longer knows stays issued
// and not running, for the leader's missing-job rescue.
//
// Every poll that finds the job in squeue compares its Slurm name with the
// name this BatchSystem would give spec (so Options.NamePrefix must not
// have changed). A different name means the ID now belongs to someone
// else's job, for instance after the cluster's job IDs were reset: the job
// is then reported as Lost and never cancelled by this BatchSystem. Names
// from sacct are not compared: slurmdbd briefly records a placeholder name
// ("allocation") for a job that just ended.
func (b *BatchSystem) Adopt(ctx context.Context, spec batchsystem.JobSpec, slurmJobID string) (batchsystem.ID, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if strings.HasPrefix(slurmJobID, "pilot/") {
		return b.adoptGrouped(spec, slurmJobID)
	}
	if !validSlurmID(slurmJobID) {
		return 0, fmt.Errorf("%w: %q is not a Slurm job ID", ErrBadSpec, slurmJobID)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.shut {
		return 0, batchsystem.ErrShutdown
	}
	if _, ok := b.bySlurm[slurmJobID]; ok {
		return 0, fmt.Errorf("%w: %s", ErrAlreadyTracked, slurmJobID)
	}
	return b.track(spec, slurmJobID, time.Now().Add(-b.opts.SacctLookback), true), nil
}

// track records a submitted job; b.mu must be held.
func (b *BatchSystem) track(spec batchsystem.JobSpec, slurmID string, since time.Time, adopted bool) batchsystem.ID {
	return b.trackLocked(spec, slurmID, since, adopted).id
}

func (b *BatchSystem) trackLocked(spec batchsystem.JobSpec, slurmID string, since time.Time, adopted bool) *job {
	id := b.nextID
	b.nextID++
	j := &job{
		id: id, slurmID: slurmID, jobID: spec.JobID,
		name: jobName(b.opts.NamePrefix, spec), since: since, adopted: adopted,
	}
	b.jobs[id] = j
	b.bySlurm[slurmID] = id
	select {
	case b.wake <- struct{}{}:
	default:
	}
	return j
}

// BackingID returns the Slurm job ID of an issued job, for the leader to
// record so a later leader can Adopt it.
func (b *BatchSystem) BackingID(id batchsystem.ID) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if m, ok := b.members[id]; ok && !m.killed {
		return m.backing(), true
	}
	j, ok := b.jobs[id]
	if !ok || j.killed || j.pilot != "" {
		return "", false
	}
	return j.slurmID, true
}

// Issued lists the jobs issued and not yet returned by WaitFinished.
func (b *BatchSystem) Issued(ctx context.Context) ([]batchsystem.ID, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.shut {
		return nil, batchsystem.ErrShutdown
	}
	ids := make([]batchsystem.ID, 0, len(b.jobs)+len(b.members))
	for id, j := range b.jobs {
		if !j.killed && j.pilot == "" {
			ids = append(ids, id)
		}
	}
	for id, m := range b.members {
		if !m.killed {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// Running lists the jobs Slurm said were running at the last poll, with
// their run time extrapolated to now. It runs no Slurm command.
func (b *BatchSystem) Running(ctx context.Context) (map[batchsystem.ID]time.Duration, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.shut {
		return nil, batchsystem.ErrShutdown
	}
	now := time.Now()
	res := map[batchsystem.ID]time.Duration{}
	for id, j := range b.jobs {
		if !j.killed && j.finished == nil && j.phase == phaseRunning && j.pilot == "" {
			res[id] = j.elapsed + now.Sub(j.seenAt)
		}
	}
	for id, m := range b.members {
		if !m.killed && m.finished == nil && m.started {
			res[id] = max(0, now.Sub(m.start))
		}
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
			if m, ok := b.members[id]; ok {
				if m.killed || m.finished == nil {
					continue
				}
				b.forgetMember(m)
				if len(b.done) > 0 {
					b.signalDone()
				}
				b.mu.Unlock()
				pilot.Queue{Root: m.root}.Forget(m.ticket, m.pilot)
				return m.finished, nil
			}
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
	if b.bySlurm[j.slurmID] == j.id {
		delete(b.bySlurm, j.slurmID)
	}
}

// SchedulingStatus says what Slurm last said about a job that is not
// running, such as "Slurm job 12 is PENDING (Resources)".
func (b *BatchSystem) SchedulingStatus(id batchsystem.ID) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if m, ok := b.members[id]; ok {
		return b.memberStatus(m)
	}
	j, ok := b.jobs[id]
	if !ok || j.killed || j.finished != nil || j.phase == phaseRunning || j.pilot != "" {
		return ""
	}
	switch {
	case j.state == "":
		return fmt.Sprintf("Slurm job %s not polled yet", j.slurmID)
	case !j.known:
		return fmt.Sprintf("Slurm job %s is unknown to squeue and sacct", j.slurmID)
	case j.reason != "" && j.reason != "None":
		return fmt.Sprintf("Slurm job %s is %s (%s)", j.slurmID, j.state, j.reason)
	}
	return fmt.Sprintf("Slurm job %s is %s", j.slurmID, j.state)
}

func (b *BatchSystem) checkOpen() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.shut {
		return batchsystem.ErrShutdown
	}
	return nil
}

// run runs one Slurm command under CommandTimeout.
func (b *BatchSystem) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, b.opts.CommandTimeout)
	defer cancel()
	return b.opts.Runner.Run(ctx, name, args...)
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
