package gaffer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/jobstore"
	"github.com/gafferhq/gaffer/scaler"
)

// Leader runs one workflow: it walks the job graph, issues runnable jobs
// to the batch system, takes their results into the store, and ends with
// the root's value or an error naming every failed job.
//
// A Leader is the only writer of its store. It runs one workflow per
// store; calling Run again on the same store resumes it.
//
// The leader decides nothing itself: the graph's transitions decide and
// write down a plan, which the leader applies (apply) and then talks to
// the batch system (docs/architecture.md).
type Leader struct {
	cfg       Config
	log       *slog.Logger
	store     jobstore.Store
	ownsStore bool
	// routes are the batch systems, by the graph's route number (route.go):
	// with one batch system, routes[0]; with several, routes[1:].
	routes []*route
	trs    [2]transport // by kind: worker processes, in-process
	pools  []transport  // worker pools, one per batch system that wants one
	fw     *forwarders  // waiting on several batch systems
	scaled uint8        // the route whose jobs the scaler sees
	bsName string       // for the attempt records, with one batch system
	clock  Clock        // the batch system's, if it keeps its own time

	// mu guards the graph and what follows against Why, Status and
	// Stats. The loop holds it except while it waits for the batch
	// system.
	mu        sync.Mutex
	g         *graph
	meta      jobstore.Meta
	metaDirty bool         // meta changed (a new epoch) and is not yet saved
	rec       jobstore.Job // reused for every record written
	stats     Stats
	live      liveView // the snapshot other processes read (live.go)

	work      *workload
	scaler    *scaler.ClusterScaler
	nextScale time.Time

	lastProgress      time.Time // of the last job event, start or issue
	lastRescue        time.Time
	lastDeadlockCheck time.Time
	lastControl       time.Time

	// Requests from Cancel and CancelWorkflow, taken by the loop.
	reqMu       sync.Mutex
	reqCancel   []JobID
	reqCancelWF bool

	// A run's course: Start, ticks, end.
	runStart   time.Time
	running    bool
	stopScaler func()
	closed     bool

	// Commit pipelining (apply.go): whether it is safe here, the commit
	// in flight and its plan.
	pipeline bool
	commit   *jobstore.Commit
	flying   *plan

	// dropLater holds results nothing reads any more that a plan had too
	// many of to delete in its own transaction (a fan-in's million);
	// later transactions delete them, createChunk at a time.
	dropLater jobstore.IDList
}

// NewLeader opens (or creates) the store and prepares a leader. It fails
// with a clear error on a store that is not a gaffer store, is damaged,
// or is in use by another leader.
func NewLeader(cfg Config) (*Leader, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	l := &Leader{cfg: cfg, log: cfg.Logger, store: cfg.JobStore}
	if l.store == nil {
		s, err := jobstore.OpenBolt(cfg.Store, &jobstore.BoltOptions{NoSync: cfg.NoSync})
		if err != nil {
			return nil, err
		}
		l.store, l.ownsStore = s, true
	}
	if err := l.openRoutes(); err != nil {
		l.Close()
		return nil, err
	}
	// Pipelining is safe only if no attempt can outlive the leader.
	l.pipeline = true
	for _, rt := range l.routes {
		if rt != nil && !rt.tr.diesWithLeader() {
			l.pipeline = false
		}
	}
	l.work = &workload{issued: map[batchsystem.ID]scaler.Job{}}
	return l, nil
}

// Close releases the store and, if the leader made it, the batch system.
// Calls after the first do nothing.
func (l *Leader) Close() error {
	if l.closed {
		return nil
	}
	l.closed = true
	l.end(context.Background())
	var errs []error
	for _, rt := range l.routes {
		if rt != nil && rt.owned {
			errs = append(errs, rt.bs.Shutdown(context.Background()))
		}
	}
	for _, tr := range l.transports() {
		errs = append(errs, tr.close())
	}
	if l.ownsStore && l.store != nil {
		errs = append(errs, l.store.Close())
	}
	return errors.Join(errs...)
}

// Stats returns what the leader has done so far. Like Status, it waits
// for the leader's current step to end.
func (l *Leader) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// Run runs the workflow to its end and returns the root job's value as
// JSON. On a fresh store, root is the workflow's root job (with any graph
// built under it); on a store that already holds a workflow, Run resumes
// it, and root may be nil or must be of the same job type. A workflow
// that already finished returns its stored value (or failure) at once.
//
// Cancelling ctx kills the issued jobs and returns; the store can be
// resumed later. Cancelling the workflow (CancelWorkflow, RequestCancel)
// ends it for good, with an error matching ErrCancelled.
func (l *Leader) Run(ctx context.Context, root Node) (json.RawMessage, error) {
	if err := l.Start(ctx, root); err != nil {
		return nil, err
	}
	err := l.runLoop(ctx)
	l.end(ctx)
	if err != nil {
		return nil, err
	}
	return l.Result(ctx)
}

// runLoop ticks until the workflow ends.
func (l *Leader) runLoop(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for !l.g.finished() {
		if _, err := l.tick(ctx, -1); err != nil {
			return err
		}
	}
	return l.apply(ctx) // what a commit in flight left
}

// end stops what a run started: it kills the jobs still issued (services
// included) and stops the scaler. The store keeps the workflow, to be
// resumed if it did not finish.
func (l *Leader) end(ctx context.Context) {
	if !l.running {
		return
	}
	l.running = false
	ctx = context.WithoutCancel(ctx)
	l.stopForwarders()
	l.mu.Lock()
	if err := l.land(); err != nil {
		l.log.Warn("committing job events", "err", err)
	}
	ids := l.g.issuedIDs()
	l.mu.Unlock()
	if len(ids) > 0 {
		// Leave nothing of this workflow running, whatever ended the loop.
		if err := l.kill(ctx, ids); err != nil {
			l.log.Warn("killing issued jobs", "err", err)
		} else {
			l.mu.Lock()
			l.g.forgetBackings()
			if err := l.apply(ctx); err != nil {
				l.log.Warn("forgetting killed jobs' backing IDs", "err", err)
			}
			l.mu.Unlock()
		}
	}
	for _, rt := range l.routes {
		if rt == nil {
			continue
		}
		if r, ok := rt.bs.(batchsystem.Releaser); ok {
			if err := r.Release(ctx); err != nil {
				l.log.Warn("releasing the batch system's idle capacity", "batch_system", rt.name, "err", err)
			}
		}
	}
	if l.stopScaler != nil {
		l.stopScaler()
	}
	l.logEnd()
	l.endLive()
}

// Run runs the workflow with the given root and decodes its value.
func Run[Out any](ctx context.Context, l *Leader, root *Job[Out]) (Out, error) {
	var out Out
	var node Node
	if root != nil {
		node = root
	}
	b, err := l.Run(ctx, node)
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return out, fmt.Errorf("%w: decoding the root's value: %w", ErrBadInput, err)
	}
	return out, nil
}

// open loads the workflow, storing root's graph on a fresh store, and
// saves the leader's new epoch.
func (l *Leader) open(ctx context.Context, root Node) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.g != nil {
		return errors.New("gaffer: Run called twice on one Leader; make a new Leader to resume")
	}
	var m jobstore.Meta
	var rootInput []byte
	err := l.store.View(ctx, func(tx jobstore.ReadTx) (err error) {
		if m, err = tx.Meta(); err != nil || m.Root == 0 {
			return err
		}
		if rootInput, err = tx.Input(m.Root); errors.Is(err, jobstore.ErrNotFound) {
			err = nil
		}
		return err
	})
	if err != nil {
		return err
	}
	if err := l.sameWorkflow(m, root, rootInput); err != nil {
		return err
	}
	if err := l.dropUnfinished(ctx, &m); err != nil {
		return err
	}
	if m.Status == jobstore.StatusRunning || m.Status == jobstore.StatusFailed {
		if err := knownKinds(m.Kinds); err != nil {
			return err
		}
	}
	g := newGraph(l.cfg.RetryCount, l.cfg.RetryBackoff, l.cfg.RetryBackoffFactor)
	g.maxBackoff = l.cfg.MaxRetryBackoff
	g.svcMax = [2]int{l.cfg.MaxServices, l.cfg.MaxPreemptibleServices}
	g.cats = newCatLimits(l.cfg.CategoryLimits)
	g.routes.configure(slices.Collect(maps.Keys(l.cfg.BatchSystems)), l.cfg.Route)
	if l.clock != nil {
		g.now = l.clock.Now
	}
	m.Epoch++
	m.WorkDir = l.cfg.WorkDir
	g.epoch, g.nextID, g.root = m.Epoch, m.NextID, m.Root
	g.defaultMemory = l.cfg.DefaultRequirements.Memory
	g.notes = l.cfg.Provisioner != nil || l.cfg.Metrics != nil
	l.g, l.meta, l.metaDirty = g, m, true
	l.lastRescue = time.Now()
	if m.Status != jobstore.StatusNew {
		if err := l.load(ctx, root); err != nil {
			return err
		}
		if m.Status == jobstore.StatusRunning {
			if err := l.takeLeaderDeaths(); err != nil {
				return err
			}
		}
		if m.Status == jobstore.StatusFailed {
			// Run again after a failure: what failed runs again.
			n := g.restart()
			l.meta.Status = jobstore.StatusRunning
			l.log.Info("workflow restarted after its failure", "workflow_id", m.WorkflowID, "jobs_again", n)
		}
		settled, restart, failed := g.reload()
		g.resumed(settled, restart, failed, l.meta.Status)
		l.logResumed(m, len(restart), len(failed))
		if err := l.apply(ctx); err != nil {
			return err
		}
		return l.mark()
	}
	if root == nil {
		return fmt.Errorf("gaffer: the store holds no workflow and Run was given no root")
	}
	frag, err := collect(nil, []*node{root.node()})
	if err != nil {
		return err
	}
	if err := frag.validate(""); err != nil {
		return err
	}
	ids, _, err := g.ingest(frag, nil, nil)
	if err != nil {
		return err
	}
	g.root = ids.get(frag.Jobs[0].Tmp)
	l.meta.Root, l.meta.Status = g.root, jobstore.StatusRunning
	l.meta.RootKind, l.meta.RootDigest = root.node().kind, digest(root.node().input)
	g.derive()
	if err := l.apply(ctx); err != nil {
		return err
	}
	if err := l.mark(); err != nil {
		return err
	}
	l.log.Info("workflow started", "workflow_id", m.WorkflowID, "jobs", len(frag.Jobs), "store", l.cfg.Store)
	return nil
}

// load streams the live jobs of a stored workflow into the graph.
func (l *Leader) load(ctx context.Context, root Node) error {
	g := l.g
	var badBacking []JobID
	reads := map[JobID][]byte{} // inputs of jobs that may still read results
	err := l.store.View(ctx, func(tx jobstore.ReadTx) error {
		// Jobs and their predecessor lists are allocated in chunks: a
		// million separate objects would make every garbage collection
		// of the run slower.
		var slab []ljob
		var preds []JobID
		for rec, err := range tx.Jobs() {
			if err != nil {
				return err
			}
			if len(slab) == cap(slab) {
				slab = make([]ljob, 0, 4096)
			}
			if len(preds)+len(rec.Preds) > cap(preds) {
				preds = make([]JobID, 0, max(4096, len(rec.Preds)))
			}
			k := len(preds)
			preds = append(preds, rec.Preds...)
			rec.Preds = preds[k:len(preds):len(preds)]
			j, ok := g.fromRecord(rec)
			if !ok {
				badBacking = append(badBacking, rec.ID)
			}
			if mayRead(rec) && rec.InputPromises {
				in, err := tx.Input(rec.ID)
				if err != nil && !errors.Is(err, jobstore.ErrNotFound) {
					return err
				}
				reads[rec.ID] = in
			} else if mayRead(rec) {
				reads[rec.ID] = nil // requirements only
			}
			slab = append(slab, *j)
			g.add(&slab[len(slab)-1])
		}
		return nil
	})
	if err != nil {
		return err
	}
	g.reloadReads(reads)
	for _, id := range badBacking {
		l.log.Warn("unreadable backing ID; issuing the job again", "job_id", id.String())
	}
	if err := g.countsMatch(l.meta.Kinds); err != nil {
		return fmt.Errorf("%w: %s: %w", jobstore.ErrCorrupt, l.cfg.Store, err)
	}
	if err := g.missingRoute(); err != nil {
		return err
	}
	r := g.jobs.get(l.meta.Root)
	if r == nil {
		if l.meta.Status == jobstore.StatusRunning {
			return fmt.Errorf("%w: the store's root job %s is missing", jobstore.ErrCorrupt, l.meta.Root)
		}
	} else if root != nil && root.node().kind != r.kind {
		return fmt.Errorf("%w: the store's root is of type %q, Run was given %q", ErrWorkflowMismatch, r.kind, root.node().kind)
	}
	return nil
}

// tick is one turn of the leader's loop: take requests, issue what is
// ready (at most issueCap jobs when issueCap >= 0), wait up to a poll
// interval for job events and services' starts, and record them in one
// transaction; with nothing to record, run the periodic checks. It
// returns the jobs whose attempts ended. The caller holds l.mu.
func (l *Leader) tick(ctx context.Context, issueCap int) (ended []*ljob, err error) {
	l.publishLive(false) // at most once a second
	next := l.g.promoteBackoff()
	if err := l.control(ctx); err != nil {
		return nil, err
	}
	if l.g.finished() {
		return nil, nil
	}
	if err := l.issueReady(ctx, issueCap); err != nil {
		return nil, err
	}
	if l.g.finished() {
		return nil, nil
	}
	if l.g.idle() && issueCap != 0 {
		return nil, l.stuck()
	}
	// Requests (Cancel, RequestCancel) are taken at the start of a turn:
	// a turn lasts at most ControlInterval.
	wait := min(l.cfg.PollInterval, l.cfg.ControlInterval)
	if next > 0 && next < wait {
		wait = next
	}
	if l.commit != nil && wait > commitPoll {
		wait = commitPoll // then see whether it landed
	}
	if l.g.services > 0 && wait > servicePoll {
		// Services report their start apart from the batch system.
		wait = servicePoll
	}
	if d := l.stepScaler(ctx); d > 0 && d < wait {
		wait = d
	}
	l.mu.Unlock()
	r, fin, err := l.waitFinished(ctx, wait)
	l.mu.Lock()
	if err != nil {
		return nil, fmt.Errorf("gaffer: waiting for jobs: %w", err)
	}
	// Starts before ends: a service that started and then failed must be
	// seen to have started.
	if err := l.collectStarts(ctx); err != nil {
		return nil, err
	}
	if fin == nil {
		if err := l.applySoon(ctx); err != nil {
			return nil, err
		}
		if err := l.rescue(ctx); err != nil {
			return nil, err
		}
		return nil, l.checkDeadlock(ctx)
	}
	for fin != nil {
		if j := l.attemptEnded(r, fin); j != nil {
			ended = append(ended, j)
		}
		if len(ended) >= l.cfg.MaxBatch {
			break
		}
		if r, fin, err = l.waitFinished(ctx, 0); err != nil {
			return nil, fmt.Errorf("gaffer: waiting for jobs: %w", err)
		}
	}
	if len(ended) > 0 {
		l.lastProgress = time.Now()
	}
	return ended, l.applySoon(ctx)
}

// servicePoll is the longest the leader waits, while services live,
// before it looks for their starts.
const servicePoll = 50 * time.Millisecond

// attemptEnded takes batch system r's report of an attempt's end, with
// what the transport brought back, to the graph. It returns the job, or
// nil for a report of no attempt the graph has issued.
func (l *Leader) attemptEnded(r uint8, fin *batchsystem.FinishedJob) *ljob {
	j := l.g.issued[issueKey{route: r, id: fin.ID}].j
	if j == nil {
		// A job the leader killed (rescued, cancelled), or a report twice.
		l.log.Debug("batch system reported a job the leader does not track", "batch_id", fin.ID)
		return nil
	}
	tk := l.trOf(r).take(l.g.attemptOf(j), fin)
	e := event{j: j, fin: fin, out: tk.out, logTail: tk.tail, log: tk.log}
	if tk.err != nil {
		e.msg = fmt.Sprintf("its result could not be read (exit code %d): %v", fin.ExitCode, tk.err)
	}
	attemptNo := j.tries + 1
	if msg := l.g.attemptEnded(&e); msg != "" {
		l.logFailure(j, attemptNo, fin, msg)
	}
	return j
}

// issueReady hands ready jobs to the batch system, up to MaxIssued, in
// batches that share one read transaction for their inputs.
func (l *Leader) issueReady(ctx context.Context, issueCap int) error {
	for {
		room := l.g.issueRoom(l.cfg.MaxIssued, issueCap)
		if room <= 0 {
			return nil
		}
		batch := l.g.pickIssue(room)
		if issueCap >= 0 {
			issueCap -= len(batch)
		}
		if len(batch) == 0 {
			return nil
		}
		inputs := make([][]byte, len(batch))
		var bad []event
		err := l.store.View(ctx, func(tx jobstore.ReadTx) error {
			tx = l.pending(tx) // what is not committed yet
			for i, j := range batch {
				var in []byte
				var err error
				if !j.inputPromises {
					in, err = tx.Input(j.id)
					if err != nil && !errors.Is(err, jobstore.ErrNotFound) {
						return err
					}
				} else {
					if in, err = resolveInput(tx, j.id, l.g.finishedJob); errors.Is(err, jobstore.ErrCorrupt) {
						return err // the store is damaged, not the job
					}
					if err != nil {
						bad = append(bad, event{j: j, msg: fmt.Sprintf("job %s: input: %v", j.display(), err), permanent: true})
						batch[i] = nil
						continue
					}
				}
				inputs[i] = in
				if err := l.resolveRequirements(tx, j); errors.Is(err, jobstore.ErrCorrupt) {
					return err
				} else if err != nil {
					bad = append(bad, event{j: j, msg: err.Error(), permanent: true})
					batch[i] = nil
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("gaffer: reading job inputs: %w", err)
		}
		began := time.Now()
		for i, j := range batch {
			if j == nil {
				continue
			}
			if time.Since(began) > issueSlice {
				l.requeueRest(batch[i:]) // a slow batch system: requests first (live.go)
				break
			}
			if l.g.plan.mustSave(false) {
				if err := l.apply(ctx); err != nil {
					return err
				}
			}
			if e, ok := l.issue(ctx, j, inputs[i]); !ok {
				bad = append(bad, e)
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		for _, e := range bad {
			n := e.j.tries + 1
			l.g.issueFailed(e.j, e.msg, e.permanent)
			l.logFailure(e.j, n, nil, e.msg)
		}
		if err := l.applySoon(ctx); err != nil {
			return err
		}
		// A long round of issues still publishes and takes requests.
		l.publishLive(false)
		if err := l.control(ctx); err != nil || l.g.finished() {
			return err
		}
	}
}

// spec describes job j to the batch system; the transport fills in how
// it runs.
func (l *Leader) spec(j *ljob) batchsystem.JobSpec {
	return batchsystem.JobSpec{
		JobID: j.id.String(), Name: j.display(), Kind: j.kind, Attempt: int(j.tries) + 1,
		Requirements: l.cfg.fill(*j.req),
	}
}

// issue hands one attempt of j to the batch system, or returns the
// failure to charge it.
func (l *Leader) issue(ctx context.Context, j *ljob, input []byte) (event, bool) {
	if msg := l.g.route(j, l.cfg.fill(*j.req)); msg != "" {
		return event{j: j, msg: msg, permanent: true}, false
	}
	rt := l.routes[j.route]
	a := l.g.newAttempt(j)
	env := &envelope{
		Job: j.id, Kind: j.kind, Name: j.extra().name, Attempt: int(j.tries) + 1, Epoch: a.epoch, Seq: a.seq,
		WorkDir: l.cfg.WorkDir, Input: input,
	}
	if a.service {
		env.Service, env.ServicePoll = true, l.cfg.ServicePollInterval
	}
	spec := l.spec(j)
	if err := rt.tr.prepare(env, &spec); err != nil {
		return event{j: j, msg: err.Error()}, false
	}
	id, err := rt.bs.Issue(ctx, spec)
	if err != nil {
		rt.tr.forget(a)
		if ctx.Err() != nil {
			l.g.requeue(j) // not the job's fault; it is issued again on resume
			return event{}, true
		}
		to := ""
		if r := l.g.routedTo(j); r != "" {
			to = " to " + r + " (" + l.g.routes.how(j) + ")"
		}
		return event{j: j, msg: fmt.Sprintf("job %s could not be issued%s: %v", j.display(), to, err),
			permanent: errors.Is(err, batchsystem.ErrInsufficientResources)}, false
	}
	var backing string
	if rt.adopter != nil {
		backing, _ = rt.adopter.BackingID(id)
	}
	l.g.issuedAs(j, id, backing)
	l.lastProgress = time.Now()
	if l.stats.Attempts++; l.stats.Attempts == 1 {
		l.stats.FirstIssue = time.Since(l.runStart)
	}
	if l.log.Enabled(ctx, slog.LevelDebug) { // not worth its strings otherwise
		l.log.Debug("job issued", "job_id", j.id.String(), "job_kind", j.kind, "batch_id", id, "attempt", j.tries+1)
	}
	return event{}, true
}
