package jobstore

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"os"
	"runtime/debug"
	"slices"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the version of the bbolt layout this package writes.
// A store with a higher version is refused with ErrSchemaVersion.
const SchemaVersion = 1

const magic = "gaffer-jobstore"

var (
	bucketMeta    = []byte("meta")
	bucketJobs    = []byte("jobs")
	bucketResults = []byte("results")
	// bucketAttempts is made by the first write of an attempt: stores
	// from before attempts were recorded have none.
	bucketAttempts = []byte("attempts")

	keyMagic      = []byte("magic")
	keySchema     = []byte("schema")
	keyMeta       = []byte("workflow")
	keyNextID     = []byte("next_id")
	keyRootResult = []byte("root_result")
)

var allBuckets = [][]byte{bucketMeta, bucketJobs, bucketResults}

// BoltOptions tune OpenBolt. A nil *BoltOptions means the defaults.
type BoltOptions struct {
	// NoSync skips the fsync at each commit: faster, but a machine crash
	// can lose or corrupt the store. For tests only.
	NoSync bool
	// LockTimeout is how long to wait for another process to release the
	// file. 0 means 1 second; -1 means fail at once.
	LockTimeout time.Duration
	// ReadOnly opens the store for reading, sharing the file lock with
	// other readers. Update fails.
	ReadOnly bool
	// MmapSize is the address space reserved for the file up front; 0
	// means 1 GiB. When a transaction grows the file past the mapping,
	// bbolt remaps it and first copies every page the transaction touched
	// onto the heap: with a million new jobs in one transaction that copy
	// was the leader's largest use of memory. Reserving address space
	// costs no memory until the file grows into it.
	MmapSize int
}

// Bolt is the bbolt-backed Store: one file per workflow.
type Bolt struct {
	db   *bolt.DB
	path string
}

var _ Store = (*Bolt)(nil)

// OpenBolt opens the store at path, creating and initializing the file if
// it does not exist or is empty. It refuses a file that is not a gaffer
// store (ErrForeign), a damaged one (ErrCorrupt), one from a newer gaffer
// (ErrSchemaVersion) and one held by another process (ErrLocked).
func OpenBolt(path string, opts *BoltOptions) (s *Bolt, err error) {
	if opts == nil {
		opts = &BoltOptions{}
	}
	timeout := opts.LockTimeout
	switch {
	case timeout == 0:
		timeout = time.Second
	case timeout < 0:
		timeout = time.Nanosecond
	}
	// bbolt panics on some damaged files instead of returning an error,
	// and a read of a page past the file's end is a fault: a damaged
	// store must be an error for the caller, never a crash.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, r)
		}
	}()
	if err := checkFile(path); err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: timeout,
		NoSync:  opts.NoSync,
		// The free list is written at every commit. Without it, opening
		// a store walks every page to rebuild the list, in a goroutine
		// of bbolt's own that panics on a damaged page: nothing can
		// recover that, and the process dies.
		NoFreelistSync:  false,
		FreelistType:    bolt.FreelistMapType,
		ReadOnly:        opts.ReadOnly,
		InitialMmapSize: cmp.Or(opts.MmapSize, 1<<30),
	})
	if err != nil {
		return nil, classifyOpenError(path, err)
	}
	s = &Bolt{db: db, path: path}
	if err := s.init(opts.ReadOnly); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func classifyOpenError(path string, err error) error {
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return fmt.Errorf("%w: %s: %w", ErrLocked, path, err)
	case errors.Is(err, bolterrors.ErrInvalid):
		return fmt.Errorf("%w: %s: %w", ErrForeign, path, err)
	case errors.Is(err, bolterrors.ErrVersionMismatch), errors.Is(err, bolterrors.ErrChecksum),
		errors.Is(err, bolterrors.ErrInvalidMapping):
		return fmt.Errorf("%w: %s: %w", ErrCorrupt, path, err)
	}
	var perr *os.PathError
	if errors.As(err, &perr) {
		return fmt.Errorf("jobstore: open %s: %w", path, err)
	}
	// Any other refusal from bbolt while reading the file's pages.
	return fmt.Errorf("%w: %s: %w", ErrCorrupt, path, err)
}

func (s *Bolt) init(readOnly bool) error {
	check := func(tx *bolt.Tx) (fresh bool, err error) {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			// An empty bbolt file is ours to initialize; one holding
			// another program's buckets is not.
			foreign := false
			_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error { foreign = true; return nil })
			if foreign {
				return false, fmt.Errorf("%w: %s holds another program's bbolt data", ErrForeign, s.path)
			}
			return true, nil
		}
		if !bytes.Equal(meta.Get(keyMagic), []byte(magic)) {
			return false, fmt.Errorf("%w: %s has no gaffer marker", ErrForeign, s.path)
		}
		v := meta.Get(keySchema)
		if len(v) != 8 {
			return false, fmt.Errorf("%w: %s: schema version missing", ErrCorrupt, s.path)
		}
		if n := binary.BigEndian.Uint64(v); n > SchemaVersion {
			return false, fmt.Errorf("%w: %s has schema %d, this gaffer reads up to %d", ErrSchemaVersion, s.path, n, SchemaVersion)
		}
		for _, b := range allBuckets {
			if tx.Bucket(b) == nil {
				return false, fmt.Errorf("%w: %s: bucket %q missing", ErrCorrupt, s.path, b)
			}
		}
		return false, nil
	}
	var fresh bool
	if err := s.db.View(func(tx *bolt.Tx) (err error) { fresh, err = check(tx); return err }); err != nil {
		return err
	}
	if !fresh {
		return nil
	}
	if readOnly {
		return fmt.Errorf("%w: %s is empty", ErrNotFound, s.path)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("jobstore: init %s: %w", s.path, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		m := Meta{WorkflowID: uuid.NewString(), Created: time.Now().UTC()}
		mb, _ := json.Marshal(m)
		return errors.Join(
			meta.Put(keyMagic, []byte(magic)),
			meta.Put(keySchema, u64(SchemaVersion)),
			meta.Put(keyMeta, mb),
			meta.Put(keyNextID, u64(1)),
		)
	})
}

// Path returns the store's file name.
func (s *Bolt) Path() string { return s.path }

// Close releases the file.
func (s *Bolt) Close() error { return s.db.Close() }

// View runs fn in a read transaction.
func (s *Bolt) View(ctx context.Context, fn func(ReadTx) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	defer s.recoverCorrupt(&err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	return s.wrap(s.db.View(func(tx *bolt.Tx) error { return fn(&boltTx{tx: tx}) }))
}

// Update runs fn in a write transaction, committed (and synced) if fn
// returns nil.
func (s *Bolt) Update(ctx context.Context, fn func(Tx) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	defer s.recoverCorrupt(&err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	return s.wrap(s.db.Update(func(tx *bolt.Tx) error {
		// Job IDs only grow, so new jobs and results are appended; full
		// pages instead of bbolt's half-full splits halve the pages a
		// big commit builds and the file's size.
		tx.Bucket(bucketJobs).FillPercent = 0.9
		tx.Bucket(bucketResults).FillPercent = 0.9
		return fn(&boltTx{tx: tx})
	}))
}

// UpdateAsync runs fn in a write transaction now and commits (and syncs)
// it in the background: jobstore.Pipeliner.
func (s *Bolt) UpdateAsync(ctx context.Context, fn func(Tx) error) (c *Commit, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	defer s.recoverCorrupt(&err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	tx, err := s.db.Begin(true)
	if err != nil {
		return nil, s.wrap(err)
	}
	tx.Bucket(bucketJobs).FillPercent = 0.9
	tx.Bucket(bucketResults).FillPercent = 0.9
	c, end := NewCommit()
	btx := &boltTx{tx: tx, async: c}
	if err := s.runRollingBack(tx, btx, fn); err != nil {
		return nil, err
	}
	go func() {
		var err error
		func() {
			defer s.recoverCorrupt(&err)
			defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
			err = s.wrap(tx.Commit())
		}()
		end(err)
	}()
	return c, nil
}

// runRollingBack runs fn in tx, and rolls tx back if fn fails or panics.
func (s *Bolt) runRollingBack(tx *bolt.Tx, btx *boltTx, fn func(Tx) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			_ = tx.Rollback()
			panic(r) // to recoverCorrupt
		}
	}()
	if err = fn(btx); err != nil {
		_ = tx.Rollback()
	}
	return err
}

func (s *Bolt) wrap(err error) error {
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return fmt.Errorf("%w: %s", ErrClosed, s.path)
	}
	if errors.Is(err, bolterrors.ErrDatabaseReadOnly) || errors.Is(err, bolterrors.ErrTxNotWritable) {
		return fmt.Errorf("jobstore: %s is open read-only: %w", s.path, err)
	}
	return err
}

func (s *Bolt) recoverCorrupt(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: %s: %v", ErrCorrupt, s.path, r)
	}
}

type boltTx struct {
	tx       *bolt.Tx
	attempts *bolt.Bucket // made by the first PutAttempt
	scratch  []byte       // reused by encodeValue
	async    *Commit      // set for UpdateAsync: OnCommit goes to it
	arena    []byte       // values and keys handed to bbolt, which keeps them until the commit
	lastJob  []byte       // the highest job key stored or created, once CreateJob has looked

	// The jobs and results buckets, with a cursor each, kept for the
	// transaction: bbolt looks a bucket up and makes a cursor, whose
	// stack then grows anew, for every Get and Delete, and the leader
	// makes several of each per job.
	jobsB, resultsB *bolt.Bucket
	jobsC, resultsC *bolt.Cursor
}

// bucket returns the jobs or the results bucket, and its cursor.
func (t *boltTx) bucket(name []byte) (*bolt.Bucket, *bolt.Cursor) {
	if bytes.Equal(name, bucketJobs) {
		if t.jobsB == nil {
			t.jobsB = t.tx.Bucket(bucketJobs)
			t.jobsC = t.jobsB.Cursor()
		}
		return t.jobsB, t.jobsC
	}
	if t.resultsB == nil {
		t.resultsB = t.tx.Bucket(bucketResults)
		t.resultsC = t.resultsB.Cursor()
	}
	return t.resultsB, t.resultsC
}

// get is Bucket.Get on the jobs or results bucket, through its cursor.
func (t *boltTx) get(name, k []byte) []byte {
	_, c := t.bucket(name)
	ck, v := c.Seek(k)
	if !bytes.Equal(ck, k) {
		return nil
	}
	return v
}

// del is Bucket.Delete on the jobs or results bucket, through its cursor.
func (t *boltTx) del(name, k []byte) error {
	_, c := t.bucket(name)
	if ck, _ := c.Seek(k); !bytes.Equal(ck, k) {
		return nil
	}
	return c.Delete()
}

// keep copies b into the transaction's arena. bbolt holds every key and
// value put in a transaction until it commits; a million new jobs would be
// two million small allocations, and their rounding, without it.
func (t *boltTx) keep(b []byte) []byte {
	if len(b) > 4096 {
		return b
	}
	if len(t.arena)+len(b) > cap(t.arena) {
		t.arena = make([]byte, 0, 256<<10)
	}
	k := len(t.arena)
	t.arena = append(t.arena, b...)
	return t.arena[k:len(t.arena):len(t.arena)]
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func key(id JobID) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(id)) }

func (t *boltTx) Meta() (Meta, error) {
	var m Meta
	meta := t.tx.Bucket(bucketMeta)
	b, err := openSealed(keyMeta, meta.Get(keyMeta))
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err == nil && m.Status > StatusCancelled {
		err = fmt.Errorf("unknown workflow status %d", m.Status)
	}
	if err != nil {
		return m, fmt.Errorf("%w: workflow record: %w", ErrCorrupt, err)
	}
	v := meta.Get(keyNextID)
	if len(v) != 8 {
		return m, fmt.Errorf("%w: next job id missing", ErrCorrupt)
	}
	m.NextID = JobID(binary.BigEndian.Uint64(v))
	return m, nil
}

func (t *boltTx) SetMeta(m Meta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return t.tx.Bucket(bucketMeta).Put(keyMeta, t.sealed(keyMeta, b))
}

func (t *boltTx) AllocIDs(n int) (JobID, error) {
	if n <= 0 {
		return 0, fmt.Errorf("jobstore: AllocIDs(%d): need a positive count", n)
	}
	meta := t.tx.Bucket(bucketMeta)
	v := meta.Get(keyNextID)
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: next job id missing", ErrCorrupt)
	}
	first := binary.BigEndian.Uint64(v)
	if err := meta.Put(keyNextID, u64(first+uint64(n))); err != nil {
		return 0, err
	}
	return JobID(first), nil
}

func decodeJob(k, v []byte) (*Job, error) {
	if len(k) != 8 {
		return nil, fmt.Errorf("%w: job key %x", ErrCorrupt, k)
	}
	id := JobID(binary.BigEndian.Uint64(k))
	state, rec, _, err := splitValue(k, v)
	if err == nil {
		var j *Job
		if j, err = decodeRecord(id, state, rec); err == nil {
			return j, nil
		}
	}
	return nil, fmt.Errorf("%w: job %s: %w", ErrCorrupt, id, err)
}

func (t *boltTx) Job(id JobID) (*Job, error) {
	k := key(id)
	v := t.get(bucketJobs, k)
	if v == nil {
		return nil, fmt.Errorf("%w: job %s", ErrNotFound, id)
	}
	return decodeJob(k, v)
}

func (t *boltTx) Jobs(states ...State) iter.Seq2[*Job, error] {
	return func(yield func(*Job, error) bool) {
		c := t.tx.Bucket(bucketJobs).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(states) > 0 && (len(v) == 0 || !slices.Contains(states, State(v[0]))) {
				continue
			}
			j, err := decodeJob(k, v)
			if !yield(j, err) || err != nil {
				return
			}
		}
	}
}

func (t *boltTx) CreateJob(j *Job, input []byte) error {
	if j.ID == 0 {
		return fmt.Errorf("jobstore: create job: ID 0 is not a job")
	}
	jobs, _ := t.bucket(bucketJobs)
	k := key(j.ID)
	// New jobs take new IDs, above every stored one: past the highest
	// key, the check for an existing job needs no search of the tree.
	if t.lastJob == nil {
		t.lastJob, _ = jobs.Cursor().Last()
		t.lastJob = bytes.Clone(t.lastJob)
		if t.lastJob == nil {
			t.lastJob = []byte{}
		}
	}
	if bytes.Compare(k, t.lastJob) <= 0 && t.get(bucketJobs, k) != nil {
		return fmt.Errorf("%w: job %s", ErrExists, j.ID)
	}
	if bytes.Compare(k, t.lastJob) > 0 {
		t.lastJob = k
	}
	v, err := encodeValue(j, input, &t.scratch)
	if err != nil {
		return err
	}
	return jobs.Put(t.keep(k), t.keep(v))
}

func (t *boltTx) UpdateJob(j *Job) error {
	return t.rewrite(j.ID, func(_ State, rec, input []byte) ([]byte, error) { return encodeValue(j, input, &t.scratch) })
}

// rewrite replaces a stored value with fn's version of it.
func (t *boltTx) rewrite(id JobID, fn func(state State, rec, input []byte) ([]byte, error)) error {
	jobs, _ := t.bucket(bucketJobs)
	k := key(id)
	old := t.get(bucketJobs, k)
	if old == nil {
		return fmt.Errorf("%w: job %s", ErrNotFound, id)
	}
	state, rec, input, err := splitValue(k, old)
	if err != nil {
		return fmt.Errorf("%w: job %s: %w", ErrCorrupt, id, err)
	}
	v, err := fn(state, rec, input)
	if err != nil {
		return err
	}
	return jobs.Put(k, v)
}

func (t *boltTx) DeleteJob(id JobID) error { return t.del(bucketJobs, key(id)) }

func (t *boltTx) DeleteResult(id JobID) error { return t.del(bucketResults, key(id)) }

func (t *boltTx) Input(id JobID) ([]byte, error) {
	v, err := t.InputView(id)
	return bytes.Clone(v), err
}

func (t *boltTx) InputView(id JobID) ([]byte, error) {
	k := key(id)
	v := t.get(bucketJobs, k)
	if v == nil {
		return nil, fmt.Errorf("%w: input of job %s", ErrNotFound, id)
	}
	_, _, input, err := splitValue(k, v)
	if err != nil {
		return nil, fmt.Errorf("%w: job %s: %w", ErrCorrupt, id, err)
	}
	if len(input) == 0 {
		return nil, fmt.Errorf("%w: input of job %s", ErrNotFound, id)
	}
	return input, nil
}

func (t *boltTx) Result(id JobID) ([]byte, error) {
	v, err := t.ResultView(id)
	return bytes.Clone(v), err
}

func (t *boltTx) ResultView(id JobID) ([]byte, error) {
	return t.viewSealed(bucketResults, key(id), "result of job "+id.String())
}

func (t *boltTx) PutResult(id JobID, value []byte) error {
	if value == nil {
		value = []byte("null")
	}
	k := key(id)
	results, _ := t.bucket(bucketResults)
	return results.Put(t.keep(k), t.sealed(k, value))
}

// Results, the root's result and the workflow record are stored sealed:
// a zero byte (no JSON value starts with one), the CRC-32C of key and
// value, then the value. A value without the zero byte is from a gaffer
// that did not seal them, and is read as it is.

// sealed returns value sealed for key, in memory that lives until the
// commit.
func (t *boltTx) sealed(key, value []byte) []byte {
	b := append(t.scratch[:0], 0)
	b = binary.BigEndian.AppendUint32(b, checksum(key, value))
	b = append(b, value...)
	t.scratch = b
	if len(b) > 4096 {
		return slices.Clone(b) // keep hands big values to bbolt as they are
	}
	return t.keep(b)
}

// getSealed reads the sealed value of k in bucket, checked.
func (t *boltTx) getSealed(bucket, k []byte, what string) ([]byte, error) {
	v, err := t.viewSealed(bucket, k, what)
	return bytes.Clone(v), err
}

// viewSealed is getSealed without the copy (Viewer).
func (t *boltTx) viewSealed(bucket, k []byte, what string) ([]byte, error) {
	var v []byte
	if bytes.Equal(bucket, bucketJobs) || bytes.Equal(bucket, bucketResults) {
		v = t.get(bucket, k)
	} else {
		v = t.tx.Bucket(bucket).Get(k)
	}
	if v == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, what)
	}
	v, err := openSealed(k, v)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, what, err)
	}
	return v, nil
}

func openSealed(k, v []byte) ([]byte, error) {
	if len(v) == 0 || v[0] != 0 {
		return v, nil
	}
	if len(v) < 1+sumLen {
		return nil, errShort
	}
	body := v[1+sumLen:]
	if want, got := binary.BigEndian.Uint32(v[1:]), checksum(k, body); want != got {
		return nil, fmt.Errorf("checksum mismatch (stored %08x, computed %08x)", want, got)
	}
	return body, nil
}

func (t *boltTx) RootResult() ([]byte, error) {
	return t.getSealed(bucketMeta, keyRootResult, "root result")
}

func (t *boltTx) SetRootResult(value []byte) error {
	if value == nil {
		value = []byte("null")
	}
	return t.tx.Bucket(bucketMeta).Put(keyRootResult, t.sealed(keyRootResult, value))
}

func (t *boltTx) PutAttempt(a *Attempt) error {
	if t.attempts == nil {
		b, err := t.tx.CreateBucketIfNotExists(bucketAttempts)
		if err != nil {
			return err
		}
		// Attempts of later jobs come later: appended, as jobs are.
		b.FillPercent = 0.9
		t.attempts = b
	}
	b := t.attempts
	k := attemptKey(a)
	v := seal(k, encodeAttempt(t.scratch[:0], a))
	t.scratch = v
	if len(v) > 4096 {
		v = slices.Clone(v) // keep hands big values to bbolt as they are
	}
	return b.Put(t.keep(k), t.keep(v))
}

func (t *boltTx) Attempts(job JobID) iter.Seq2[*Attempt, error] {
	return func(yield func(*Attempt, error) bool) {
		b := t.tx.Bucket(bucketAttempts)
		if b == nil {
			return
		}
		c := b.Cursor()
		k, v := c.First()
		if job != 0 {
			k, v = c.Seek(key(job))
		}
		for ; k != nil; k, v = c.Next() {
			a, err := decodeAttempt(k, v)
			if err == nil && job != 0 && a.Job != job {
				return
			}
			if !yield(a, err) || err != nil {
				return
			}
		}
	}
}

func (t *boltTx) OnCommit(fn func()) {
	if t.async != nil {
		t.async.OnCommit(fn) // run by Commit.Wait, in its caller's goroutine
		return
	}
	t.tx.OnCommit(fn)
}
