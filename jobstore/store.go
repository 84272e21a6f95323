package jobstore

import (
	"context"
	"errors"
	"iter"
	"time"
)

// Store is a workflow's durable state. The leader is its only user.
//
// Reads and writes happen inside closure-scoped transactions, after bbolt:
// View for reads, Update for an atomic, durable group of writes. A
// transaction must not be used after its closure returns.
type Store interface {
	// View runs fn in a read-only transaction.
	View(ctx context.Context, fn func(ReadTx) error) error
	// Update runs fn in a read-write transaction and commits it if fn
	// returns nil; otherwise nothing fn wrote is kept.
	Update(ctx context.Context, fn func(Tx) error) error
	// Close releases the store. Using it afterwards fails with ErrClosed.
	Close() error
}

// Status is where the workflow as a whole stands.
type Status uint8

// The workflow's statuses.
const (
	StatusNew       Status = iota // initialized, no root yet
	StatusRunning                 // has a root that has not finished
	StatusSucceeded               // the root's subtree is done; RootResult is set
	StatusFailed                  // the root failed totally
	StatusCancelled               // a user cancelled the workflow
)

var statusNames = [...]string{"new", "running", "succeeded", "failed", "cancelled"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "unknown"
}

// Meta describes the workflow a store holds.
type Meta struct {
	WorkflowID string    `json:"workflow_id"`
	Created    time.Time `json:"created"`
	Root       JobID     `json:"root,omitempty"`
	Status     Status    `json:"status"`
	// Epoch counts leader starts on this store; a leader increments it
	// when it starts, so results written for an older leader's attempts can
	// be told apart.
	Epoch uint64 `json:"epoch"`
	// Cancel is set by a user who wants the workflow stopped; the leader
	// polls it.
	Cancel bool `json:"cancel,omitempty"`
	// WorkDir is the absolute path of the workflow's work directory, so
	// that tools find it from the store alone.
	WorkDir string `json:"work_dir,omitempty"`
	// RootKind and RootDigest identify the workflow: the root job's type
	// and a SHA-256 of its input, hex. A leader refuses to resume the
	// store with another root.
	RootKind   string `json:"root_kind,omitempty"`
	RootDigest string `json:"root_digest,omitempty"`
	// Kinds counts the stored job records by job type, so that a leader
	// can check, before it loads anything, that it knows every type.
	Kinds map[string]int `json:"kinds,omitempty"`
	// NextID is the ID that AllocIDs would return next, as Meta reads
	// it; SetMeta ignores it. The leader hands out IDs from it in memory
	// and checks, when it allocates them in a transaction, that the
	// store agrees.
	NextID JobID `json:"-"`
	// Creating, when set, names jobs a leader is storing in several
	// transactions (a fan-out of a million) ahead of the one that
	// records their creator's success, which clears it. A leader that
	// finds it set at start deletes those jobs: their creator's success
	// was never recorded, so it runs again and makes them anew.
	Creating *IDRange `json:"creating,omitempty"`
}

// ReadTx reads a store.
type ReadTx interface {
	// Meta returns the workflow's description.
	Meta() (Meta, error)
	// Job loads one job. A missing job is an error matching ErrNotFound.
	Job(id JobID) (*Job, error)
	// Jobs yields the stored jobs in ID order whose state is one of
	// states, or every job when states is empty. The iteration costs one
	// pass over the jobs kept; jobs in other states are not decoded.
	Jobs(states ...State) iter.Seq2[*Job, error]
	// Input returns a job's stored input; ErrNotFound when it has none.
	Input(id JobID) ([]byte, error)
	// Result returns a job's stored return value; ErrNotFound when none.
	Result(id JobID) ([]byte, error)
	// RootResult returns the workflow's final value; ErrNotFound until the
	// workflow has succeeded.
	RootResult() ([]byte, error)
	// Attempts yields the recorded attempts of job, or of every job when
	// job is 0, by job and then in the order they were issued.
	Attempts(job JobID) iter.Seq2[*Attempt, error]
}

// Tx reads and writes a store. Its methods do not keep the *Job or the
// byte slices they are given: a caller may reuse them at once.
type Tx interface {
	ReadTx
	// SetMeta replaces the workflow's description.
	SetMeta(Meta) error
	// AllocIDs reserves n consecutive new job IDs and returns the first.
	AllocIDs(n int) (JobID, error)
	// CreateJob stores a new job with its input (which may be nil). It
	// fails with ErrExists if the ID is taken.
	CreateJob(j *Job, input []byte) error
	// UpdateJob replaces a stored job; ErrNotFound if there is none.
	UpdateJob(j *Job) error
	// DeleteJob removes a job and its input, but not its result (a later
	// job may still need it). Deleting a missing job is not an error.
	DeleteJob(id JobID) error
	// PutResult stores a job's return value.
	PutResult(id JobID, value []byte) error
	// DeleteResult removes a job's return value once nothing will read
	// it again. Deleting a missing one is not an error.
	DeleteResult(id JobID) error
	// SetRootResult records the workflow's final value.
	SetRootResult(value []byte) error
	// PutAttempt records an attempt; one with the same Job, Epoch and Seq
	// is replaced.
	PutAttempt(a *Attempt) error
	// OnCommit has fn run once the transaction has committed, and never
	// if it does not: the effects that must follow what it records.
	OnCommit(fn func())
}

// Pipeliner is implemented by stores that can make a transaction's
// writes at once and commit them in the background, so that the leader
// goes on deciding while the disk syncs (docs/architecture.md, "commit
// pipelining"). A store without it is committed with Update.
type Pipeliner interface {
	// UpdateAsync runs fn in a read-write transaction in the calling
	// goroutine, then commits the transaction in the background. If fn
	// fails, nothing is kept and UpdateAsync returns its error. Until the
	// commit ends, reads see the store as it was before the transaction,
	// and a further Update or UpdateAsync waits for it.
	UpdateAsync(ctx context.Context, fn func(Tx) error) (*Commit, error)
}

// A Viewer is a ReadTx that can lend its stored bytes rather than copy
// them: the leader reads a million results to resolve a fan-in's input
// and keeps none of them. What InputView and ResultView return is valid
// only until the transaction ends or writes, and must not be modified.
// Errors are those of Input and Result. A store whose reads copy anyway
// need not offer it.
type Viewer interface {
	InputView(id JobID) ([]byte, error)
	ResultView(id JobID) ([]byte, error)
}

// Commit is a transaction committing in the background.
type Commit struct {
	done     chan struct{}
	err      error
	onCommit []func()
	waited   bool
}

// NewCommit returns a Commit and the function that ends it with err,
// for implementations of Pipeliner.
func NewCommit() (*Commit, func(err error)) {
	c := &Commit{done: make(chan struct{})}
	return c, func(err error) { c.err = err; close(c.done) }
}

// Done is closed when the commit has ended, well or not.
func (c *Commit) Done() <-chan struct{} { return c.done }

// OnCommit has fn run by Wait once the commit has succeeded, in Wait's
// caller's goroutine: what the transaction's OnCommit was given.
func (c *Commit) OnCommit(fn func()) { c.onCommit = append(c.onCommit, fn) }

// Wait waits for the commit to end and returns its error. The first call
// after a successful commit runs the transaction's OnCommit functions.
func (c *Commit) Wait() error {
	<-c.done
	if c.err == nil && !c.waited {
		c.waited = true
		for _, fn := range c.onCommit {
			fn()
		}
	}
	return c.err
}

// Errors a Store returns. Implementations wrap them with detail.
var (
	ErrNotFound      = errors.New("jobstore: not found")
	ErrExists        = errors.New("jobstore: already exists")
	ErrClosed        = errors.New("jobstore: store is closed")
	ErrLocked        = errors.New("jobstore: store is in use by another process")
	ErrCorrupt       = errors.New("jobstore: store file is corrupt")
	ErrForeign       = errors.New("jobstore: file is not a gaffer job store")
	ErrSchemaVersion = errors.New("jobstore: store was written by a newer gaffer")
)
