package jobstore

import (
	"encoding/json"
	"fmt"
	"iter"
	"strconv"
	"time"

	"github.com/gafferhq/gaffer/gaffertype"
)

// JobID names a job within one workflow. IDs are allocated in increasing
// order by Tx.AllocIDs and never reused; 0 is never a job.
type JobID uint64

func (id JobID) String() string { return "j" + strconv.FormatUint(uint64(id), 10) }

// State is where a job stands. Only states the leader cannot derive from
// other records are stored; "ready", "issued" and "waiting for
// predecessors" are all StatePending.
type State uint8

// The stored states of a job.
const (
	// StatePending: the job's body has not run successfully yet.
	StatePending State = iota + 1
	// StateChildren: the body ran; the job waits for its children's subtrees.
	StateChildren
	// StateFollowOns: the children's subtrees are done; the job waits for
	// its follow-ons' subtrees.
	StateFollowOns
	// StateDone: the job's whole subtree is done. Only the root's record is
	// kept in this state; other jobs are deleted when done.
	StateDone
	// StateFailed: the job failed totally (no tries left), or a successor
	// of it did.
	StateFailed
	// StateSkipped: the job will never run because a predecessor failed.
	StateSkipped
	// StateCancelled: the job was cancelled by a user, or a successor of
	// it was.
	StateCancelled
	// StateServices: the body ran; the job's services are starting, and
	// its children wait for them.
	StateServices
)

var stateNames = [...]string{"", "pending", "children", "follow-ons", "done", "failed", "skipped", "cancelled", "services"}

func (s State) String() string {
	if int(s) < len(stateNames) && s > 0 {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Valid reports whether s is one of the defined states.
func (s State) Valid() bool { return s >= StatePending && s <= StateServices }

// Job is the stored record of one job: what the leader needs to schedule
// it. The job's input and result are stored apart from it (Tx.PutInput,
// Tx.PutResult), so that updating a record never rewrites them.
type Job struct {
	ID    JobID  `json:"-"`
	Kind  string `json:"k"`           // registered job type
	Name  string `json:"n,omitempty"` // display name; empty means Kind
	State State  `json:"s"`

	// Preds lists the jobs that have this job as a child or follow-on, one
	// entry per edge. A job with several is a join.
	Preds     []JobID `json:"p,omitempty"`
	Children  IDList  `json:"c,omitempty"`
	FollowOns IDList  `json:"f,omitempty"`

	// Services lists a client job's services, parents before their
	// child services. ServiceOf is set on a service: its client.
	// ParentService is set on a child service: the service that must
	// start before it.
	Services      IDList `json:"sv,omitempty"`
	ServiceOf     JobID  `json:"so,omitempty"`
	ParentService JobID  `json:"ps,omitempty"`

	// Categories name the concurrency limits the job counts against.
	Categories []string `json:"cat,omitempty"`

	Requirements gaffertype.Requirements `json:"r"`
	Checkpoint   bool                    `json:"cp,omitempty"`

	// Tries counts the failed attempts charged so far; Retries is how many
	// failed attempts the job may have before it fails totally, so it may
	// run Retries+1 times. Retries -1 means the leader's default.
	Tries   int `json:"t,omitempty"`
	Retries int `json:"rt"`
	// Backoff is the wait charged by the last failure; NotBefore is when
	// the job may be issued again (Unix nanoseconds; 0 means now).
	Backoff   time.Duration `json:"b,omitempty"`
	NotBefore int64         `json:"nb,omitempty"`

	// InputPromises says the stored input contains promise placeholders
	// that the leader must resolve before the job runs.
	InputPromises bool `json:"ip,omitempty"`
	// Forwarded says another job's stored result promises this job's
	// result, which must then be kept while the workflow runs.
	Forwarded bool `json:"fw,omitempty"`

	// For failed jobs: the last error, the tail of the last attempt's log,
	// and for skipped jobs the failed job that caused it.
	LastError string `json:"e,omitempty"`
	LogTail   string `json:"l,omitempty"`
	Cause     JobID  `json:"cz,omitempty"`

	// LeaderDeaths counts the leaders that died in a row while the job
	// ran in their process.
	LeaderDeaths int `json:"ld,omitempty"`
	// RequirementsFrom holds, until the job is issued, requirements that
	// come from other jobs' results: a JSON object whose "cores",
	// "memory" and "disk" are promises.
	RequirementsFrom string `json:"rf,omitempty"`
	// MemoryFactor and MemoryCeiling: after an attempt that ran out of
	// memory, the next asks for MemoryFactor times as much, up to
	// MemoryCeiling bytes (0: no ceiling). A factor of 0 means never.
	MemoryFactor  float64 `json:"mf,omitempty"`
	MemoryCeiling int64   `json:"mc,omitempty"`
	// Backing records where the current attempt runs, for re-adoption by
	// a later leader (for example a Slurm job ID). Empty when not issued.
	Backing string `json:"bk,omitempty"`
	// Target is the batch system the job asked to run on (gaffer.RunOn);
	// BatchSystem is the one a leader with several routed it to, the
	// first time it was issued, and which every later attempt and leader
	// keeps. Empty means none asked, or not routed (yet, or by a leader
	// with one batch system).
	Target      string `json:"bt,omitempty"`
	BatchSystem string `json:"bs,omitempty"`
}

// DisplayName is the job's name for people: "name (j12)" or "kind (j12)".
func (j *Job) DisplayName() string { return DisplayName(j.Name, j.Kind, j.ID.String()) }

// DisplayName names a job for people, in errors, logs and tools: its name
// (its kind when it has none) and, in brackets, its ID ("j12") or, for a
// job not yet stored, its temporary number ("new #3").
func DisplayName(name, kind, id string) string {
	if name == "" {
		name = kind
	}
	return name + " (" + id + ")"
}

// IDRange is a run of consecutive job IDs: First, First+1, ..., First+N-1.
type IDRange struct {
	First JobID
	N     uint64
}

// IDList is a list of job IDs kept as runs of consecutive IDs, so that the
// 100,000 children of a fan-out, which get consecutive IDs, take a few
// bytes. Order is kept; duplicates are not checked here.
type IDList []IDRange

// Len returns the number of IDs in l.
func (l IDList) Len() int {
	n := 0
	for _, r := range l {
		n += int(r.N)
	}
	return n
}

// Append adds id at the end of l.
func (l IDList) Append(id JobID) IDList {
	if k := len(l); k > 0 && l[k-1].First+JobID(l[k-1].N) == id {
		l[k-1].N++
		return l
	}
	return append(l, IDRange{First: id, N: 1})
}

// Contains reports whether id is in l.
func (l IDList) Contains(id JobID) bool {
	for _, r := range l {
		if id >= r.First && id < r.First+JobID(r.N) {
			return true
		}
	}
	return false
}

// All yields the IDs of l in order.
func (l IDList) All() iter.Seq[JobID] {
	return func(yield func(JobID) bool) {
		for _, r := range l {
			for i := range r.N {
				if !yield(r.First + JobID(i)) {
					return
				}
			}
		}
	}
}

// IDs returns l as a plain slice.
func (l IDList) IDs() []JobID {
	out := make([]JobID, 0, l.Len())
	for id := range l.All() {
		out = append(out, id)
	}
	return out
}

// MarshalJSON writes l as [[first,n],...].
func (l IDList) MarshalJSON() ([]byte, error) {
	buf := make([]byte, 0, 2+len(l)*16)
	buf = append(buf, '[')
	for i, r := range l {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = fmt.Appendf(buf, "[%d,%d]", uint64(r.First), r.N)
	}
	return append(buf, ']'), nil
}

// UnmarshalJSON reads the form written by MarshalJSON.
func (l *IDList) UnmarshalJSON(b []byte) error {
	var pairs [][2]uint64
	if err := json.Unmarshal(b, &pairs); err != nil {
		return fmt.Errorf("jobstore: id list: %w", err)
	}
	out := make(IDList, 0, len(pairs))
	for _, p := range pairs {
		if p[0] == 0 || p[1] == 0 {
			return fmt.Errorf("jobstore: id list: bad range [%d,%d]", p[0], p[1])
		}
		out = append(out, IDRange{First: JobID(p[0]), N: p[1]})
	}
	*l = out
	return nil
}
