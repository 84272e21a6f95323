package gaffer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/batchsystem/local"
	"github.com/gafferhq/gaffer/jobstore"
	"github.com/gafferhq/gaffer/scaler"
)

// Leader runs one workflow: it walks the job graph, issues runnable jobs
// to the batch system, takes their results into the store, and ends with
// the root's value or an error naming every failed job.
//
// A Leader is the only writer of its store. It runs one workflow per
// store; calling Run again on the same store resumes it.
type Leader struct {
	cfg       Config
	log       *slog.Logger
	store     jobstore.Store
	ownsStore bool
	bs        batchsystem.BatchSystem
	ownsBS    bool
	inProc    bool

	meta       jobstore.Meta
	g          *graph
	issued     map[batchsystem.ID]*ljob
	issuedSvcs int // services among issued
	seq        uint64

	mailMu sync.Mutex
	mail   map[uint64]*outcome // in-process outcomes, by issue number

	cleanup        []string                  // job folders to remove after the next commit
	backingsToSave int                       // backing IDs recorded since the last commit
	procsEnv       map[int]map[string]string // worker environments by GOMAXPROCS
	rec            jobstore.Job              // reused for every record written

	statsMu sync.Mutex
	stats   Stats

	// mu guards the scheduling state against Why and Status. The loop
	// holds it except while it waits for the batch system.
	mu sync.Mutex

	lastRescue time.Time
	missing    map[batchsystem.ID]int // rescue checks each issued job was missing for

	clock     Clock // the batch system's, if it keeps its own time
	work      *workload
	scaler    *scaler.ClusterScaler
	nextScale time.Time

	// Services hosted in this process report their start here and are
	// stopped by closing their channel (svcMu guards both).
	svcMu       sync.Mutex
	startedMail []startReport
	svcStop     map[uint64]chan struct{}

	cats              *catLimits
	lastProgress      time.Time // of the last job event, start or issue
	lastDeadlockCheck time.Time

	// Requests from Cancel and CancelWorkflow, taken by the loop.
	reqMu       sync.Mutex
	reqCancel   []JobID
	reqCancelWF bool
	lastControl time.Time
	doneControl []string // request files handled, removed at the next commit

	// A run's course: Start, ticks, end.
	runStart   time.Time
	running    bool
	stopScaler func()
}

// Stats counts what a leader did, for benchmarks and monitoring.
type Stats struct {
	Issued     int           // jobs handed to the batch system
	Succeeded  int           // job bodies that succeeded
	Failed     int           // failed attempts
	Commits    int           // store transactions that recorded job events
	FirstIssue time.Duration // from Run's start to its first issued job
}

// NewLeader opens (or creates) the store and prepares a leader. It fails
// with a clear error on a store that is not a gaffer store, is damaged,
// or is in use by another leader.
func NewLeader(cfg Config) (*Leader, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	l := &Leader{cfg: cfg, log: cfg.Logger, store: cfg.JobStore, bs: cfg.BatchSystem, mail: map[uint64]*outcome{}}
	if l.store == nil {
		s, err := jobstore.OpenBolt(cfg.Store, &jobstore.BoltOptions{NoSync: cfg.NoSync})
		if err != nil {
			return nil, err
		}
		l.store, l.ownsStore = s, true
	}
	if l.bs == nil {
		bs, err := local.New(local.Options{Logger: cfg.Logger})
		if err != nil {
			l.Close()
			return nil, err
		}
		l.bs, l.ownsBS = bs, true
	}
	if ip, ok := l.bs.(batchsystem.InProcess); ok {
		l.inProc = ip.InProcess()
	}
	l.clock, _ = l.bs.(Clock)
	l.work = &workload{issued: map[batchsystem.ID]scaler.Job{}}
	return l, nil
}

// Close releases the store and, if the leader made it, the batch system.
func (l *Leader) Close() error {
	l.end(context.Background())
	var errs []error
	if l.ownsBS && l.bs != nil {
		errs = append(errs, l.bs.Shutdown(context.Background()))
	}
	if l.ownsStore && l.store != nil {
		errs = append(errs, l.store.Close())
	}
	return errors.Join(errs...)
}

// Stats returns what the leader has done so far.
func (l *Leader) Stats() Stats {
	l.statsMu.Lock()
	defer l.statsMu.Unlock()
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
	return nil
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
	l.mu.Lock()
	ids := make([]batchsystem.ID, 0, len(l.issued))
	for id := range l.issued {
		ids = append(ids, id)
	}
	l.mu.Unlock()
	if len(ids) > 0 {
		// Leave nothing of this workflow running, whatever ended the loop.
		if kerr := l.bs.Kill(ctx, ids); kerr != nil {
			l.log.Warn("killing issued jobs", "err", kerr)
		} else if err := l.forgetBackings(ctx); err != nil {
			l.log.Warn("forgetting killed jobs' backing IDs", "err", err)
		}
	}
	if l.stopScaler != nil {
		l.stopScaler()
	}
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

// open loads the workflow, storing root's graph on a fresh store.
func (l *Leader) open(ctx context.Context, root Node) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.g != nil {
		return errors.New("gaffer: Run called twice on one Leader; make a new Leader to resume")
	}
	l.g = newGraph(l.cfg.RetryCount, l.cfg.RetryBackoff, l.cfg.RetryBackoffFactor)
	l.g.maxBackoff = l.cfg.MaxRetryBackoff
	l.g.svcMax = [2]int{l.cfg.MaxServices, l.cfg.MaxPreemptibleServices}
	l.svcStop = map[uint64]chan struct{}{}
	l.cats = newCatLimits(l.cfg.CategoryLimits)
	if l.clock != nil {
		l.g.now = l.clock.Now
	}
	l.issued = map[batchsystem.ID]*ljob{}
	l.missing = map[batchsystem.ID]int{}
	l.lastRescue = time.Now()
	var frag *fragment
	err := l.store.Update(ctx, func(tx jobstore.Tx) error {
		m, err := tx.Meta()
		if err != nil {
			return err
		}
		m.Epoch++
		if m.Status == jobstore.StatusNew {
			if root == nil {
				return fmt.Errorf("gaffer: the store holds no workflow and Run was given no root")
			}
			frag, err = collect(nil, []*node{root.node()})
			if err != nil {
				return err
			}
			if err := frag.validate(""); err != nil {
				return err
			}
			ids, err := l.ingest(tx, frag, nil)
			if err != nil {
				return err
			}
			m.Root, m.Status = ids.get(frag.Jobs[0].Tmp), jobstore.StatusRunning
		}
		l.meta = m
		return tx.SetMeta(m)
	})
	if err != nil {
		return err
	}
	l.g.root = l.meta.Root
	if frag != nil {
		// A fresh workflow: the graph was just made in memory.
		l.g.dirty, l.g.deleted = map[JobID]*ljob{}, nil
		l.g.derive()
		l.log.Info("workflow started", "workflow_id", l.meta.WorkflowID, "jobs", len(frag.Jobs), "store", l.cfg.Store)
		return nil
	}
	if err := l.load(ctx, root); err != nil {
		return err
	}
	// A whole-workflow cancel leaves the jobs' records as they were: the
	// status is what says the workflow ended.
	switch l.meta.Status {
	case jobstore.StatusSucceeded:
		l.g.rootDone = true
	case jobstore.StatusFailed:
		l.g.rootFailed = true
	case jobstore.StatusCancelled:
		l.g.rootCancelled = true
	}
	l.log.Info("workflow resumed", "workflow_id", l.meta.WorkflowID, "live_jobs", len(l.g.jobs), "ready", l.g.readyLen(), "epoch", l.meta.Epoch)
	return nil
}

// load streams the live jobs of a stored workflow into memory.
func (l *Leader) load(ctx context.Context, root Node) error {
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
			slab = append(slab, *l.g.fromRecord(rec))
			l.g.jobs[rec.ID] = &slab[len(slab)-1]
		}
		return nil
	})
	if err != nil {
		return err
	}
	r := l.g.jobs[l.meta.Root]
	if r == nil {
		if l.meta.Status == jobstore.StatusRunning {
			return fmt.Errorf("%w: the store's root job %s is missing", jobstore.ErrCorrupt, l.meta.Root)
		}
	} else if root != nil && root.node().kind != r.kind {
		return fmt.Errorf("%w: the store's root is of type %q, Run was given %q", ErrWorkflowMismatch, r.kind, root.node().kind)
	}
	restart, failed := l.g.resumeServices()
	settled := l.g.derive()
	if len(settled)+len(restart)+len(failed) == 0 && len(l.g.dirty) == 0 && len(l.g.deleted) == 0 {
		return nil
	}
	return l.commit(ctx, func(jobstore.Tx) error {
		for _, j := range settled {
			l.g.phaseDone(j)
		}
		for _, c := range failed {
			l.g.settle(c)
		}
		for _, c := range restart {
			if c.state == jobstore.StateServices {
				l.g.startServices(c)
			}
		}
		return nil
	})
}

// ingest stores a fragment's jobs with fresh IDs under parent (nil for a
// first graph) and links them into memory. It returns the new IDs by
// temporary number.
func (l *Leader) ingest(tx jobstore.Tx, f *fragment, parent *ljob) (*tmpIndex, error) {
	if len(f.Jobs) == 0 {
		return nil, nil
	}
	first, err := tx.AllocIDs(len(f.Jobs))
	if err != nil {
		return nil, err
	}
	if len(f.Jobs) >= hugeFragment {
		// The running job's own garbage (its job handles) may be as big
		// as what we are about to build; collect it now, so that the
		// heap does not grow to twice both.
		runtime.GC()
	}
	ids := newTmpIndex(f.Jobs, first)
	news := make([]*ljob, len(f.Jobs))
	// One allocation for the records and one for the usual single
	// predecessor of each, rather than two per job.
	slab := make([]ljob, len(f.Jobs))
	predSlab := make([]JobID, len(f.Jobs))
	for i := range f.Jobs {
		fj := &f.Jobs[i]
		id := first + JobID(i)
		news[i] = &slab[i]
		*news[i] = ljob{
			id: id, kind: l.g.intern(fj.Kind), state: jobstore.StatePending,
			req: l.g.shareReq(derefReq(fj.Req)), retries: int32(fj.Retries), checkpoint: fj.Checkpoint,
		}
		if n := fj.name(); n != "" {
			news[i].ext().name = n
		}
		if len(fj.Categories) > 0 {
			news[i].ext().categories = l.g.intern(strings.Join(fj.Categories, "\x00"))
		}
	}
	linkServices := func(c *ljob, svcs []int64) {
		for _, t := range svcs {
			k := int(ids.get(t) - first)
			s := news[k]
			c.addService(s.id)
			sv := &svcInfo{client: c.id}
			if ps := f.Jobs[k].parentSvc(); ps != 0 {
				sv.parent = ids.get(ps)
			}
			s.ext().svc = sv
			l.g.services++
		}
	}
	link := func(p *ljob, children, followOns []int64) {
		for _, t := range children {
			k := int(ids.get(t) - first)
			p.addChild(news[k].id)
			news[k].addPred(p.id, predSlab, k)
		}
		for _, t := range followOns {
			k := int(ids.get(t) - first)
			p.addFollowOn(news[k].id)
			news[k].addPred(p.id, predSlab, k)
		}
	}
	for i := range f.Jobs {
		link(news[i], f.Jobs[i].children(), f.Jobs[i].followOns())
		linkServices(news[i], f.Jobs[i].services())
	}
	if parent != nil {
		link(parent, f.Children, f.FollowOns)
		linkServices(parent, f.Services)
		l.g.touch(parent)
	}
	for i, j := range news {
		input := []byte(f.Jobs[i].Input)
		if hasPromises(input) {
			input, err = rewriteTemps(input, ids)
			if err != nil {
				return nil, fmt.Errorf("%w: job %s: %w", ErrBadInput, j.display(), err)
			}
			j.inputPromises = true
		}
		if err := tx.CreateJob(j.record(&l.rec), input); err != nil {
			return nil, err
		}
		f.Jobs[i].Input = nil // the store has it now; let it go
		l.g.jobs[j.id] = j
	}
	return ids, nil
}

// hugeFragment is the size of fragment above which ingest collects
// garbage first.
const hugeFragment = 100_000

// addPred records a predecessor, taking the first one's storage from
// slab[k], k being the job's place in its fragment.
func (j *ljob) addPred(p JobID, slab []JobID, k int) {
	if j.preds == nil {
		slab[k] = p
		j.preds = slab[k : k+1 : k+1]
		return
	}
	j.preds = append(j.preds, p)
}

func derefReq(r *Requirements) Requirements {
	if r == nil {
		return Requirements{}
	}
	return *r
}

// tmpIndex maps the temporary numbers of a fragment's jobs to their IDs.
// Jobs made one after another have consecutive numbers, so it is usually
// a slice; a map otherwise.
type tmpIndex struct {
	lo    int64
	dense []JobID
	m     map[int64]JobID
}

func newTmpIndex(jobs []fragJob, first JobID) *tmpIndex {
	x := &tmpIndex{}
	if len(jobs) == 0 {
		return x
	}
	lo, hi := jobs[0].Tmp, jobs[0].Tmp
	for i := range jobs {
		lo, hi = min(lo, jobs[i].Tmp), max(hi, jobs[i].Tmp)
	}
	if span := hi - lo + 1; span <= 2*int64(len(jobs))+16 {
		x.lo, x.dense = lo, make([]JobID, span)
		for i := range jobs {
			x.dense[jobs[i].Tmp-lo] = first + JobID(i)
		}
		return x
	}
	x.m = make(map[int64]JobID, len(jobs))
	for i := range jobs {
		x.m[jobs[i].Tmp] = first + JobID(i)
	}
	return x
}

func (x *tmpIndex) lookup(tmp int64) (JobID, bool) {
	if x == nil {
		return 0, false
	}
	if x.m != nil {
		id, ok := x.m[tmp]
		return id, ok
	}
	if k := tmp - x.lo; k >= 0 && k < int64(len(x.dense)) && x.dense[k] != 0 {
		return x.dense[k], true
	}
	return 0, false
}

// get is lookup for numbers validate has checked.
func (x *tmpIndex) get(tmp int64) JobID { id, _ := x.lookup(tmp); return id }

// rewriteTemps replaces temporary job numbers in placeholders by IDs.
func rewriteTemps(b []byte, ids *tmpIndex) ([]byte, error) {
	return mapPlaceholders(b, func(ph placeholder) ([]byte, error) {
		if ph.Job < 0 {
			id, ok := ids.lookup(ph.Job)
			if !ok {
				return nil, fmt.Errorf("promise of job #%d, which is not part of the graph", -ph.Job)
			}
			ph.Job = int64(id)
		}
		return placeholderJSON(ph), nil
	})
}

// resolve replaces every promise in b by the value it promises.
func resolve(tx jobstore.ReadTx, b []byte, depth int) ([]byte, error) {
	return mapPlaceholders(b, func(ph placeholder) ([]byte, error) {
		if depth > 64 {
			return nil, fmt.Errorf("%w: promise chain deeper than 64 (a job forwards to itself?)", ErrUnfulfilledPromise)
		}
		if ph.Job <= 0 {
			return nil, fmt.Errorf("%w: promise of unsaved job #%d", ErrUnfulfilledPromise, -ph.Job)
		}
		v, err := tx.Result(JobID(ph.Job))
		if errors.Is(err, jobstore.ErrNotFound) {
			return nil, fmt.Errorf("%w: job %s has not finished; make the job that reads its result run after it (a child or follow-on)", ErrUnfulfilledPromise, JobID(ph.Job))
		}
		if err != nil {
			return nil, err
		}
		if v, err = navigate(v, ph.Path); err != nil {
			return nil, fmt.Errorf("%w: result of job %s at %s: %w", ErrUnfulfilledPromise, JobID(ph.Job), pathString(ph.Path), err)
		}
		if hasPromises(v) {
			return resolve(tx, v, depth+1)
		}
		return v, nil
	})
}

// event is one job's end: reported by the batch system, found in a job
// folder on resume, or made up by the leader (a job it could not issue).
type event struct {
	j         *ljob
	fin       *batchsystem.FinishedJob
	out       *outcome
	msg       string // failure made up by the leader
	logTail   string // the worker's log, when it left no result
	permanent bool
}

// tick is one turn of the leader's loop: take requests, issue what is
// ready (at most issueCap jobs when issueCap >= 0), wait up to a poll
// interval for job events and services' starts, and record them in one
// transaction; with nothing to record, run the periodic checks. It
// returns the jobs whose attempts ended. The caller holds l.mu.
func (l *Leader) tick(ctx context.Context, issueCap int) (ended []*ljob, err error) {
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
	if len(l.issued) == 0 && l.g.readyLen() == 0 && l.g.backoff.Len() == 0 && issueCap != 0 {
		return nil, l.stuck()
	}
	wait := l.cfg.PollInterval
	if next > 0 && next < wait {
		wait = next
	}
	if l.g.services > 0 && wait > servicePoll {
		// Services report their start apart from the batch system.
		wait = servicePoll
	}
	if d := l.stepScaler(ctx); d > 0 && d < wait {
		wait = d
	}
	l.mu.Unlock()
	fin, err := l.bs.WaitFinished(ctx, wait)
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
		if err := l.rescue(ctx); err != nil {
			return nil, err
		}
		return nil, l.checkDeadlock(ctx)
	}
	events := make([]event, 0, 64)
	for fin != nil {
		if e, ok := l.finished(fin); ok {
			events = append(events, e)
		}
		if len(events) >= l.cfg.MaxBatch {
			break
		}
		if fin, err = l.bs.WaitFinished(ctx, 0); err != nil {
			return nil, fmt.Errorf("gaffer: waiting for jobs: %w", err)
		}
	}
	if err := l.apply(ctx, events); err != nil {
		return nil, err
	}
	ended = make([]*ljob, len(events))
	for i := range events {
		ended[i] = events[i].j
	}
	return ended, nil
}

// servicePoll is the longest the leader waits, while services live,
// before it looks for their starts.
const servicePoll = 50 * time.Millisecond

// finished reports whether the workflow has ended, one way or another.
func (g *graph) finished() bool { return g.rootDone || g.rootFailed || g.rootCancelled }

// finished turns a batch system report into an event, fetching the job's
// outcome from the mailbox or its folder.
func (l *Leader) finished(fin *batchsystem.FinishedJob) (event, bool) {
	j := l.issued[fin.ID]
	if j == nil {
		// A job the leader killed (rescued, cancelled), or a report twice.
		l.log.Debug("batch system reported a job the leader does not track", "batch_id", fin.ID)
		return event{}, false
	}
	l.untrack(fin.ID, j, fin.WallTime, fin.ExitCode == 0)
	e := event{j: j, fin: fin}
	if l.inProc {
		l.mailMu.Lock()
		e.out = l.mail[j.seq]
		delete(l.mail, j.seq)
		l.mailMu.Unlock()
		return e, true
	}
	dir := l.jobDir(j.id)
	epoch := l.meta.Epoch
	if x := j.extra(); x.issueEpoch != 0 {
		epoch = x.issueEpoch
	}
	e.out = readOutcome(filepath.Join(dir, resultFile(epoch, j.seq)), j)
	if e.out != nil && !e.out.OK && e.out.LogTail == "" || e.out == nil && fin.ExitCode != 0 {
		tail := readTail(filepath.Join(dir, logFile(epoch, j.seq)), logTailMax)
		if e.out != nil {
			e.out.LogTail = tail
		} else {
			e.logTail = tail
		}
	}
	l.cleanup = append(l.cleanup, dir)
	return e, true
}

func readOutcome(path string, j *ljob) *outcome {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out outcome
	if json.Unmarshal(b, &out) != nil || out.Job != j.id {
		return nil
	}
	return &out
}

// apply records a batch of events in one transaction.
func (l *Leader) apply(ctx context.Context, events []event) error {
	if len(events) == 0 {
		return nil
	}
	l.lastProgress = time.Now()
	return l.commit(ctx, func(tx jobstore.Tx) error {
		for i := range events {
			if err := l.handle(tx, &events[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// commit runs fn and then writes every job it changed, in one
// transaction. A failed commit ends the run: memory and store would
// disagree, and the store is the truth a later Run resumes from.
func (l *Leader) commit(ctx context.Context, fn func(jobstore.Tx) error) error {
	err := l.store.Update(ctx, func(tx jobstore.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		for _, id := range l.g.deleted {
			if err := tx.DeleteJob(id); err != nil {
				return err
			}
		}
		for _, j := range l.g.dirty {
			if err := tx.UpdateJob(j.record(&l.rec)); err != nil {
				return err
			}
		}
		return l.finishWorkflow(tx)
	})
	l.g.dirty, l.g.deleted = make(map[JobID]*ljob, len(l.g.dirty)), l.g.deleted[:0]
	if err != nil {
		return fmt.Errorf("gaffer: committing job events: %w", err)
	}
	l.backingsToSave = 0
	l.statsMu.Lock()
	l.stats.Commits++
	l.statsMu.Unlock()
	for _, d := range l.cleanup {
		os.RemoveAll(d)
	}
	l.cleanup = l.cleanup[:0]
	for _, f := range l.doneControl {
		os.Remove(f)
	}
	l.doneControl = l.doneControl[:0]
	l.stopAndKill(ctx)
	return nil
}

// finishWorkflow records the workflow's end in the same transaction as
// the event that ended it.
func (l *Leader) finishWorkflow(tx jobstore.Tx) error {
	if !l.g.finished() || l.meta.Status != jobstore.StatusRunning {
		return nil
	}
	m := l.meta
	switch {
	case l.g.rootFailed:
		m.Status = jobstore.StatusFailed
	case l.g.rootCancelled:
		m.Status, m.Cancel = jobstore.StatusCancelled, true
	default:
		v, err := tx.Result(l.meta.Root)
		if err != nil {
			return err
		}
		if hasPromises(v) {
			if v, err = resolve(tx, v, 0); err != nil {
				return fmt.Errorf("gaffer: resolving the root's value: %w", err)
			}
		}
		if err := tx.SetRootResult(v); err != nil {
			return err
		}
		m.Status = jobstore.StatusSucceeded
	}
	if err := tx.SetMeta(m); err != nil {
		return err
	}
	l.meta = m
	return nil
}

// handle applies one event to memory and the open transaction.
func (l *Leader) handle(tx jobstore.Tx, e *event) error {
	j := e.j
	if j.state != jobstore.StatePending {
		return nil // settled meanwhile (skipped, cancelled)
	}
	sv := j.svc()
	if e.out != nil && e.out.OK {
		if sv == nil {
			return l.succeed(tx, j, e.out)
		}
		if sv.phase == svcStopping {
			l.g.serviceEnded(j)
			return nil
		}
		e.out.OK, e.out.Error = false, "the service ended before it was told to stop"
	}
	msg, tail, permanent := e.msg, e.logTail, e.permanent
	switch {
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
	l.statsMu.Lock()
	l.stats.Failed++
	l.statsMu.Unlock()
	l.log.Debug("job attempt failed", "job_id", j.id.String(), "job_kind", j.kind, "attempt", j.tries+1, "err", msg)
	if sv != nil && sv.phase != svcStarting {
		// A service is retried only until it starts: its users may hold
		// its old value already.
		j.tries++
		x := j.ext()
		x.logTail, x.backing, x.issueEpoch = tail, "", 0
		if sv.phase == svcRunning {
			msg = "the service failed while running: " + msg
		} else {
			msg = "the service failed while stopping: " + msg
		}
		l.g.serviceFailed(j, msg)
		return nil
	}
	l.g.attemptFailed(j, msg, tail, permanent)
	return nil
}

func (l *Leader) succeed(tx jobstore.Tx, j *ljob, out *outcome) error {
	result := []byte(out.Result)
	var ids *tmpIndex
	if out.Graph != nil && len(out.Graph.Jobs) > 0 {
		if err := out.Graph.validate(j.display()); err != nil {
			l.g.attemptFailed(j, err.Error(), out.LogTail, true)
			return nil
		}
		var err error
		ids, err = l.ingest(tx, out.Graph, j)
		// The jobs are in the store and in memory now; drop the fragment
		// before the commit, which needs memory of its own.
		out.Graph = nil
		if err != nil {
			if errors.Is(err, ErrBadInput) {
				l.g.attemptFailed(j, err.Error(), out.LogTail, true)
				return nil
			}
			return err
		}
	}
	if hasPromises(result) {
		var err error
		if result, err = rewriteTemps(result, ids); err != nil {
			l.g.attemptFailed(j, fmt.Sprintf("%v: job %s: result: %v", ErrBadInput, j.display(), err), out.LogTail, true)
			return nil
		}
	}
	if err := tx.PutResult(j.id, result); err != nil {
		return err
	}
	l.statsMu.Lock()
	l.stats.Succeeded++
	l.statsMu.Unlock()
	l.g.bodyDone(j)
	return nil
}

// issueReady hands ready jobs to the batch system, up to MaxIssued, in
// batches that share one read transaction for their inputs.
func (l *Leader) issueReady(ctx context.Context, issueCap int) error {
	for l.g.readyLen() > 0 {
		room := l.g.readyLen()
		if l.cfg.MaxIssued > 0 {
			// Services do not count: they have their own caps, and if
			// they took places here the jobs using them could wait
			// forever behind them.
			room = min(room, l.cfg.MaxIssued-(len(l.issued)-l.issuedSvcs))
		}
		if issueCap >= 0 {
			room = min(room, issueCap)
		}
		if room <= 0 {
			return nil
		}
		batch := make([]*ljob, 0, min(room, 4096))
		for len(batch) < cap(batch) {
			j := l.g.popReady()
			if j == nil {
				break
			}
			if !l.cats.admit(j) {
				continue // waits for its category; released by unreserve
			}
			batch = append(batch, j)
		}
		if issueCap >= 0 {
			issueCap -= len(batch)
		}
		if len(batch) == 0 {
			return nil
		}
		inputs := make([][]byte, len(batch))
		var bad []event
		err := l.store.View(ctx, func(tx jobstore.ReadTx) error {
			for i, j := range batch {
				in, err := tx.Input(j.id)
				if err != nil && !errors.Is(err, jobstore.ErrNotFound) {
					return err
				}
				if j.inputPromises {
					if in, err = resolve(tx, in, 0); err != nil {
						bad = append(bad, event{j: j, msg: fmt.Sprintf("job %s: input: %v", j.display(), err), permanent: true})
						l.unreserve(j)
						batch[i] = nil
						continue
					}
				}
				inputs[i] = in
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("gaffer: reading job inputs: %w", err)
		}
		for i, j := range batch {
			if j == nil {
				continue
			}
			if l.backingsToSave >= 100 {
				// A leader that dies before backing IDs are saved leaves
				// those jobs running unwatched and issues them again: save
				// often while issuing to a slow scheduler.
				if err := l.commit(ctx, func(jobstore.Tx) error { return nil }); err != nil {
					return err
				}
			}
			if e, ok := l.issue(ctx, j, inputs[i]); !ok {
				l.unreserve(j)
				bad = append(bad, e)
			} else if l.stats.Issued == 1 {
				l.statsMu.Lock()
				l.stats.FirstIssue = time.Since(l.runStart)
				l.statsMu.Unlock()
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if len(bad) == 0 && l.backingsToSave > 0 {
			// Save the backing IDs now: a leader that dies before its next
			// commit would otherwise issue these jobs a second time.
			if err := l.commit(ctx, func(jobstore.Tx) error { return nil }); err != nil {
				return err
			}
		}
		if err := l.apply(ctx, bad); err != nil {
			return err
		}
	}
	return nil
}

// spec describes job j, issued under epoch, to the batch system. For
// batch systems that start processes it names the job's folder, log and
// worker command; issue adds Run for in-process ones.
func (l *Leader) spec(j *ljob, epoch uint64) batchsystem.JobSpec {
	spec := batchsystem.JobSpec{
		JobID: j.id.String(), Name: j.display(), Kind: j.kind, Attempt: int(j.tries) + 1,
		Requirements: l.cfg.fill(*j.req),
	}
	if !l.inProc {
		spec.Dir = l.jobDir(j.id)
		spec.LogPath = filepath.Join(spec.Dir, logFile(epoch, j.seq))
		spec.Command = append(slices.Clip(l.cfg.WorkerCommand), WorkerArg, spec.Dir)
		spec.Env = l.workerEnv(spec.Requirements.Cores)
	}
	return spec
}

// workerEnv is the environment of a worker asking for cores: the user's
// WorkerEnv, and GOMAXPROCS set to the cores asked for (rounded up), as
// Toil sets OMP_NUM_THREADS. A worker for a tenth of a core has no use
// for a scheduler thread per CPU of the machine, and twenty of them
// starting at once each with a full set cost the kernel dearly.
func (l *Leader) workerEnv(cores float64) map[string]string {
	if _, set := l.cfg.WorkerEnv["GOMAXPROCS"]; set {
		return l.cfg.WorkerEnv
	}
	n := max(1, int(math.Ceil(cores)))
	if l.procsEnv == nil {
		l.procsEnv = map[int]map[string]string{}
	}
	env, ok := l.procsEnv[n]
	if !ok {
		env = maps.Clone(l.cfg.WorkerEnv)
		if env == nil {
			env = map[string]string{}
		}
		env["GOMAXPROCS"] = strconv.Itoa(n)
		l.procsEnv[n] = env
	}
	return env
}

// track records an issued job.
func (l *Leader) track(j *ljob, id batchsystem.ID, spec batchsystem.JobSpec) {
	j.where, j.bsID = isIssued, id
	l.issued[id] = j
	if j.svc() != nil {
		l.issuedSvcs++
	}
	l.work.add(id, j.kind, spec.Requirements)
}

// untrack forgets an issued job that ended or was killed: wall is its
// run time if known, ok whether it succeeded.
func (l *Leader) untrack(id batchsystem.ID, j *ljob, wall time.Duration, ok bool) {
	if _, was := l.issued[id]; was && j.svc() != nil {
		l.issuedSvcs--
	}
	delete(l.issued, id)
	delete(l.missing, id)
	l.work.done(id, wall, ok)
	j.where = nowhere
	l.dropInProcessHooks(j)
	l.unreserve(j)
}

// unreserve gives back j's places in its categories and lets the jobs
// waiting for them go.
func (l *Leader) unreserve(j *ljob) {
	for _, w := range l.cats.release(j) {
		if w.where == inLimit && w.state == jobstore.StatePending {
			w.where = nowhere
			l.g.makeReady(w)
		}
	}
}

// issue hands one job to the batch system, or returns the failure event.
func (l *Leader) issue(ctx context.Context, j *ljob, input []byte) (event, bool) {
	l.seq++
	j.seq = l.seq
	env := &envelope{
		Job: j.id, Kind: j.kind, Name: j.extra().name, Attempt: int(j.tries) + 1, Epoch: l.meta.Epoch, Seq: j.seq,
		WorkDir: l.cfg.WorkDir, Input: input,
	}
	if j.svc() != nil {
		env.Service, env.ServicePoll = true, l.cfg.ServicePollInterval
	}
	spec := l.spec(j, l.meta.Epoch)
	if l.inProc {
		seq := j.seq
		hooks := l.inProcessHooks(j, env)
		spec.Run = func(ctx context.Context) error {
			tail := &tailBuffer{max: logTailMax}
			out := runJob(ctx, env, tail, l.log.Handler(), hooks)
			if !out.OK {
				out.LogTail = tail.String()
			}
			l.mailMu.Lock()
			l.mail[seq] = out
			l.mailMu.Unlock()
			if !out.OK {
				return errors.New(out.Error)
			}
			return nil
		}
	} else {
		b, err := json.Marshal(env)
		if err == nil {
			if err = os.MkdirAll(spec.Dir, 0o755); err == nil {
				err = writeFileAtomic(filepath.Join(spec.Dir, inputFile), b, false)
			}
		}
		if err != nil {
			return event{j: j, msg: fmt.Sprintf("writing the job's input to %s: %v", spec.Dir, err)}, false
		}
	}
	id, err := l.bs.Issue(ctx, spec)
	if err != nil {
		l.dropInProcessHooks(j)
		if ctx.Err() != nil {
			l.unreserve(j)
			l.g.makeReady(j) // not the job's fault; it is issued again on resume
			return event{}, true
		}
		return event{j: j, msg: fmt.Sprintf("job %s could not be issued: %v", j.display(), err),
			permanent: errors.Is(err, batchsystem.ErrInsufficientResources)}, false
	}
	l.track(j, id, spec)
	l.lastProgress = time.Now()
	if a, ok := l.bs.(batchsystem.Adopter); ok {
		if backing, ok := a.BackingID(id); ok {
			// Stored with the issue's epoch and number, which name the
			// result file, so that a later leader can adopt the job.
			j.ext().backing = fmt.Sprintf("%d.%d/%s", l.meta.Epoch, j.seq, backing)
			l.g.touch(j)
			l.backingsToSave++
		}
	}
	l.statsMu.Lock()
	l.stats.Issued++
	l.statsMu.Unlock()
	l.log.Debug("job issued", "job_id", j.id.String(), "job_kind", j.kind, "batch_id", id, "attempt", j.tries+1)
	return event{}, true
}

func (l *Leader) jobDir(id JobID) string {
	return filepath.Join(l.cfg.WorkDir, "jobs", strconv.FormatUint(uint64(id), 10))
}

// adoptFinishedResults takes the results that workers of an earlier
// leader wrote after it stopped: a job that finished while no leader was
// running is not run again.
func (l *Leader) adoptFinishedResults(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	entries, err := os.ReadDir(filepath.Join(l.cfg.WorkDir, "jobs"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("gaffer: reading job folders: %w", err)
	}
	var events []event
	for _, e := range entries {
		n, err := strconv.ParseUint(e.Name(), 10, 64)
		if err != nil {
			continue
		}
		j := l.g.jobs[JobID(n)]
		dir := filepath.Join(l.cfg.WorkDir, "jobs", e.Name())
		if j == nil || j.state != jobstore.StatePending {
			os.RemoveAll(dir) // left over from a job already recorded
			continue
		}
		if j.svc() != nil {
			continue // a service is started again, never adopted
		}
		files, _ := filepath.Glob(filepath.Join(dir, "result.*.json"))
		for _, f := range files {
			out := readOutcome(f, j)
			if out != nil && out.Attempt == int(j.tries)+1 && out.Epoch < l.meta.Epoch {
				if j.where == inReady {
					j.where = nowhere // its ready-queue entry goes stale
				}
				events = append(events, event{j: j, out: out})
				l.cleanup = append(l.cleanup, dir)
				break
			}
		}
	}
	if len(events) > 0 {
		l.log.Info("adopted results written while no leader ran", "jobs", len(events))
	}
	return l.apply(ctx, events)
}

// forgetBackings clears the backing IDs of the jobs the leader has just
// killed: a later leader must issue them again, not adopt jobs that are
// gone.
func (l *Leader) forgetBackings(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, j := range l.issued {
		if x := j.x; x != nil && x.backing != "" {
			x.backing, x.issueEpoch = "", 0
			l.g.touch(j)
			n++
		}
	}
	if n == 0 {
		return nil
	}
	return l.commit(ctx, func(jobstore.Tx) error { return nil })
}

// adoptRunningJobs takes over the jobs an earlier leader issued to a
// batch system whose jobs outlive it, instead of issuing them again. A job
// the batch system will not adopt is issued again.
func (l *Leader) adoptRunningJobs(ctx context.Context) error {
	a, ok := l.bs.(batchsystem.Adopter)
	if !ok || l.inProc {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	adopted := 0
	for _, j := range l.g.jobs {
		x := j.extra()
		if j.state != jobstore.StatePending || x.backing == "" || j.where == isIssued {
			continue
		}
		if x.svc != nil {
			// Services are started again; the old instance stops when its
			// folder's input is replaced.
			x.backing = ""
			continue
		}
		var epoch, seq uint64
		var backing string
		if n, _ := fmt.Sscanf(x.backing, "%d.%d/%s", &epoch, &seq, &backing); n != 3 {
			l.log.Warn("unreadable backing ID; issuing the job again", "job_id", j.id.String(), "backing", x.backing)
			x.backing = ""
			continue
		}
		j.seq = seq
		spec := l.spec(j, epoch)
		id, err := a.Adopt(ctx, spec, backing)
		if err != nil {
			l.log.Warn("could not adopt job; issuing it again", "job_id", j.id.String(), "backing", backing, "err", err)
			x.backing = ""
			continue
		}
		x.issueEpoch = epoch
		l.track(j, id, spec)
		adopted++
	}
	if adopted > 0 {
		l.log.Info("adopted jobs an earlier leader issued", "jobs", adopted)
	}
	return nil
}

func (l *Leader) rootResult(ctx context.Context) (json.RawMessage, error) {
	var v []byte
	err := l.store.View(ctx, func(tx jobstore.ReadTx) (err error) { v, err = tx.RootResult(); return err })
	return v, err
}

// failure builds the error that names every failed job.
func (l *Leader) failure() error {
	e := &FailedJobsError{Skipped: l.g.skipped}
	for _, id := range l.g.failedOwn {
		j := l.g.jobs[id]
		if j == nil {
			continue
		}
		x := j.extra()
		e.Jobs = append(e.Jobs, FailedJob{ID: j.id, Kind: j.kind, Name: x.name, Tries: int(j.tries), Err: x.lastError, LogTail: x.logTail})
	}
	slices.SortFunc(e.Jobs, func(a, b FailedJob) int { return int(a.ID) - int(b.ID) })
	return e
}

// stuck explains a workflow in which nothing can run.
func (l *Leader) stuck() error {
	var b strings.Builder
	b.WriteString("gaffer: no job can run and the workflow is not finished")
	n := 0
	for id, j := range l.g.jobs {
		if j.state == jobstore.StatePending && n < 10 {
			fmt.Fprintf(&b, "\n  - %s: %s", j.display(), l.why(id))
			n++
		}
	}
	return errors.New(b.String())
}
