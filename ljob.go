package gaffer

import (
	"strconv"
	"strings"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/jobstore"
)

// ljob is the leader's copy of a live job: what it needs of the stored
// record, plus counters it derives from the records around it and never
// stores. A million of them may be live at once, so fields that most jobs
// never set live behind x, and requirements are shared between jobs.
//
// Only the graph's transitions change an ljob; the leader reads it.
type ljob struct {
	id    JobID
	kind  string
	preds []JobID
	succ  *successors // nil for a job with no successors, as most are
	req   *Requirements
	x     *jobExtra      // nil while every field of it is zero
	bsID  batchsystem.ID // while issued: the batch system's ID of its attempt (on batch system route)
	seq   uint64         // issue number of its latest attempt, unique for this leader

	tries   int32 // failed attempts charged
	retries int32 // -1: the leader's default
	reached int32 // predecessor edges that have reached this job
	pending int32 // successors of the current phase not yet settled

	state         jobstore.State
	where         where
	route         uint8 // its batch system (graph.routes), once routed; 0: not routed, or the only one
	inputPromises bool
	checkpoint    bool
	failedSucc    bool // a successor failed totally
	cancelledSucc bool // a successor was cancelled
	forwarded     bool // a stored result promises its result: keep it (state_results.go)
}

// where says where a pending job stands in the leader. Only the graph's
// queue and issue transitions set it.
type where uint8

const (
	nowhere   where = iota
	inReady         // in the ready queue
	inBackoff       // waiting out a retry backoff
	isIssued        // handed to the batch system (in graph.issued)
	inLimit         // held back by a category's concurrency limit
)

// successors are a job's children, follow-ons and services, with the
// counts a client keeps of its services.
type successors struct {
	children, followOns, services jobstore.IDList

	svcStarting int32 // services not yet started
	svcLive     int32 // service records not yet ended
	ending      bool  // the successors settled; waiting for the services to end
}

func (j *ljob) services() jobstore.IDList {
	if j.succ == nil {
		return nil
	}
	return j.succ.services
}

func (j *ljob) children() jobstore.IDList {
	if j.succ == nil {
		return nil
	}
	return j.succ.children
}

func (j *ljob) followOns() jobstore.IDList {
	if j.succ == nil {
		return nil
	}
	return j.succ.followOns
}

func (j *ljob) successors() *successors {
	if j.succ == nil {
		j.succ = &successors{}
	}
	return j.succ
}

func (j *ljob) addChild(id JobID)    { s := j.successors(); s.children = s.children.Append(id) }
func (j *ljob) addFollowOn(id JobID) { s := j.successors(); s.followOns = s.followOns.Append(id) }
func (j *ljob) addService(id JobID)  { s := j.successors(); s.services = s.services.Append(id) }

// jobExtra holds what few jobs have: a name, a failure, a backoff, a
// backing ID.
type jobExtra struct {
	name, lastError, logTail string
	cause                    JobID
	backoff                  time.Duration
	notBefore                int64
	backing                  backingRef
	deaths                   int32   // leaders that died in a row while it ran in their process
	reqFrom                  string  // requirements promised by other jobs, until it is issued
	memFactor                float64 // MoreMemoryOnRetry
	memCeiling               int64
	svc                      *svcInfo // set on services
	// categories names the concurrency limits the job counts against,
	// joined by NULs (a string keeps jobExtra comparable and is shared).
	categories string
	target     string // the batch system it asked for (RunOn)
}

// backingRef is where an issued job runs in a batch system whose jobs
// outlive their leader: the scheduler's own ID, and the issue (epoch and
// number) that names the attempt's files. It is stored with the job so
// that a later leader adopts the job instead of issuing it again. The
// zero value means none.
type backingRef struct {
	epoch, seq uint64
	id         string
}

// String is the stored form, "epoch.seq/id"; "" for none.
func (b backingRef) String() string {
	if b.id == "" {
		return ""
	}
	return strconv.FormatUint(b.epoch, 10) + "." + strconv.FormatUint(b.seq, 10) + "/" + b.id
}

// parseBackingRef reads the stored form; ok is false for an unreadable one.
func parseBackingRef(s string) (b backingRef, ok bool) {
	if s == "" {
		return b, true
	}
	issue, id, found := strings.Cut(s, "/")
	e, q, dot := strings.Cut(issue, ".")
	if !found || !dot || id == "" {
		return b, false
	}
	var err1, err2 error
	b.epoch, err1 = strconv.ParseUint(e, 10, 64)
	b.seq, err2 = strconv.ParseUint(q, 10, 64)
	if err1 != nil || err2 != nil {
		return backingRef{}, false
	}
	b.id = id
	return b, true
}

func (j *ljob) categories() []string {
	if j.x == nil || j.x.categories == "" {
		return nil
	}
	return strings.Split(j.x.categories, "\x00")
}

// svcInfo is what the leader knows of a service job.
type svcInfo struct {
	client, parent JobID
	phase          svcPhase
	slot           bool // holds a place under the service limit
}

type svcPhase uint8

const (
	svcWaiting  svcPhase = iota // for its parent service to start
	svcQueued                   // for room under the service limit
	svcStarting                 // ready, in backoff or issued; not yet started
	svcRunning                  // started; its value is stored
	svcStopping                 // asked to stop
)

func (j *ljob) svc() *svcInfo {
	if j == nil || j.x == nil {
		return nil
	}
	return j.x.svc
}

var noExtra jobExtra

func (j *ljob) ext() *jobExtra {
	if j.x == nil {
		j.x = &jobExtra{}
	}
	return j.x
}

func (j *ljob) extra() *jobExtra {
	if j.x == nil {
		return &noExtra
	}
	return j.x
}

func (j *ljob) display() string { return jobstore.DisplayName(j.extra().name, j.kind, j.id.String()) }

// record fills r with the job as the store keeps it. The leader reuses
// one record for every write of a transaction.
func (j *ljob) record(r *jobstore.Job) *jobstore.Job {
	x := j.extra()
	*r = jobstore.Job{
		ID: j.id, Kind: j.kind, Name: x.name, State: j.state,
		Preds: j.preds, Children: j.children(), FollowOns: j.followOns(),
		Requirements: *j.req, Checkpoint: j.checkpoint,
		Tries: int(j.tries), Retries: int(j.retries), Backoff: x.backoff, NotBefore: x.notBefore,
		InputPromises: j.inputPromises, Forwarded: j.forwarded, LastError: x.lastError, LogTail: x.logTail, Cause: x.cause,
		Backing: x.backing.String(), Services: j.services(), Categories: j.categories(),
		LeaderDeaths: int(x.deaths), RequirementsFrom: x.reqFrom, MemoryFactor: x.memFactor, MemoryCeiling: x.memCeiling,
		Target: x.target,
	}
	if x.svc != nil {
		r.ServiceOf, r.ParentService = x.svc.client, x.svc.parent
	}
	return r
}

// clearFailure forgets the last failure once the job succeeds.
func (j *ljob) clearFailure() {
	if j.x != nil {
		j.x.lastError, j.x.logTail, j.x.notBefore, j.x.backing = "", "", 0, backingRef{}
		j.compact()
	}
}

// compact drops x once every field of it is zero.
func (j *ljob) compact() {
	if j.x != nil && *j.x == noExtra {
		j.x = nil
	}
}

// live reports whether j has not ended: pending, or waiting for its
// successors or services.
func (j *ljob) live() bool {
	switch j.state {
	case jobstore.StatePending, jobstore.StateServices, jobstore.StateChildren, jobstore.StateFollowOns:
		return true
	case jobstore.StateDone, jobstore.StateFailed, jobstore.StateSkipped, jobstore.StateCancelled:
		return false
	}
	return false // no other state is stored (jobstore refuses it)
}

// hasReached reports whether j's current phase includes s.
func (j *ljob) hasReached(s JobID) bool {
	switch j.state {
	case jobstore.StateChildren:
		return j.children().Contains(s)
	case jobstore.StateFollowOns:
		return j.followOns().Contains(s)
	case jobstore.StatePending, jobstore.StateServices, jobstore.StateDone, jobstore.StateFailed, jobstore.StateSkipped, jobstore.StateCancelled:
		// No phase of successors is running.
	}
	return false
}

// ljobQueue is a FIFO of jobs whose entries may go stale (a job cancelled,
// skipped or removed while it waited): pop skips them. It is the ready
// queue, the service limits' queues and the categories' queues. It holds
// IDs in runs, not pointers: the million children of a fan-out become
// ready together with consecutive IDs, one run, and a job it no longer
// points to can be let go with its slab.
type ljobQueue struct {
	runs []jobstore.IDRange
	head int // runs before it are used up
	n    int // entries, stale ones included
}

func (q *ljobQueue) push(j *ljob) {
	if k := len(q.runs); k > q.head && q.runs[k-1].First+JobID(q.runs[k-1].N) == j.id {
		q.runs[k-1].N++
	} else {
		q.runs = append(q.runs, jobstore.IDRange{First: j.id, N: 1})
	}
	q.n++
}

func (q *ljobQueue) len() int { return q.n }

// pop returns the first job, found in jobs, for which live is true,
// dropping the stale entries before it, or nil.
func (q *ljobQueue) pop(jobs *jobIndex, live func(*ljob) bool) *ljob {
	for q.head < len(q.runs) {
		r := &q.runs[q.head]
		id := r.First
		r.First, r.N = r.First+1, r.N-1
		q.n--
		if r.N == 0 {
			q.head++
			if q.head == len(q.runs) {
				q.runs, q.head = q.runs[:0], 0
			} else if q.head > 1024 && q.head*2 > len(q.runs) {
				// Reuse the front of the array rather than grow it forever.
				n := copy(q.runs, q.runs[q.head:])
				q.runs, q.head = q.runs[:n], 0
			}
		}
		if j := jobs.get(id); j != nil && live(j) {
			return j
		}
	}
	return nil
}

// backoffHeap orders jobs waiting out a retry backoff by when they are due.
type backoffHeap []*ljob

func (h backoffHeap) Len() int           { return len(h) }
func (h backoffHeap) Less(i, k int) bool { return h[i].extra().notBefore < h[k].extra().notBefore }
func (h backoffHeap) Swap(i, k int)      { h[i], h[k] = h[k], h[i] }
func (h *backoffHeap) Push(x any)        { *h = append(*h, x.(*ljob)) }
func (h *backoffHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return j
}
