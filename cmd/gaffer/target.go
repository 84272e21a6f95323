package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/jobstore"
)

// A target is the store a command was given, and what can be read of
// it. Either a leader (another process) holds the store, and only its
// work directory can be read; or none does, and the store is open
// read-only under a shared lock that keeps a leader from starting
// meanwhile.
type target struct {
	path    string // as given, for messages
	store   string // absolute
	workDir string

	// No leader holds the store.
	db      *jobstore.Bolt
	meta    jobstore.Meta
	release func() // the shared lock; nil where there is no separate probe

	// A leader (or some other process) holds the store for writing.
	held bool
	// unmarked: the store is held, and its work directory has no marker
	// (yet: a leader marks it after it opens the store).
	unmarked bool
	// snap is the leader's live snapshot: while held, of the leader that
	// holds it (nil while that leader has not published one yet);
	// otherwise the last leader's, if any.
	snap *gaffer.LiveStatus
}

// staleAfter is how old a snapshot of a leader on another host may be
// and still count as its leader's (a pid there cannot be checked).
const staleAfter = 30 * time.Second

// open finds the store at path and, from it, the work directory.
func open(ctx context.Context, path, workDir string) (*target, error) {
	if path == "" {
		return nil, errors.New("no STORE given")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	t := &target{path: path, store: abs, workDir: workDir}
	st, err := os.Stat(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("%s: no such store", path)
	case err != nil:
		return nil, fmt.Errorf("%s: %w", path, err)
	case st.IsDir():
		if store, _, err := gaffer.WorkDirStore(abs); err == nil && store != "" {
			return nil, fmt.Errorf("%s is the work directory of the store %s: give the store", path, store)
		}
		return nil, fmt.Errorf("%s is a directory, not a gaffer store", path)
	}

	t.release, err = jobstore.LockShared(abs)
	switch {
	case errors.Is(err, jobstore.ErrLocked):
		t.held = true
	case errors.Is(err, jobstore.ErrLockUnsupported):
		// No separate probe here: bbolt's own lock says it.
	case err != nil:
		return nil, err
	}
	if !t.held && st.Size() == 0 {
		t.close()
		return nil, fmt.Errorf("%s is empty: not a gaffer store", path)
	}
	if !t.held {
		t.db, err = jobstore.OpenBolt(abs, &jobstore.BoltOptions{ReadOnly: true, LockTimeout: -1})
		if errors.Is(err, jobstore.ErrLocked) {
			t.held = true
		} else if err != nil {
			t.close()
			return nil, notStore(path, err)
		}
	}
	if t.held {
		return t, t.findLive()
	}
	err = t.db.View(ctx, func(tx jobstore.ReadTx) (err error) { t.meta, err = tx.Meta(); return err })
	if err != nil {
		t.close()
		return nil, notStore(path, err)
	}
	if t.workDir == "" {
		t.workDir = t.meta.WorkDir
	}
	if t.workDir == "" {
		t.workDir = abs + ".work" // a store from before the work directory was recorded
	}
	if s, err := gaffer.ReadLiveStatus(t.workDir); err == nil && s.WorkflowID == t.meta.WorkflowID {
		t.snap = s
	}
	return t, nil
}

// notStore words an error opening the store.
func notStore(path string, err error) error {
	switch {
	case errors.Is(err, jobstore.ErrForeign), errors.Is(err, jobstore.ErrNotFound):
		return fmt.Errorf("%s is not a gaffer store: %w", path, err)
	case errors.Is(err, jobstore.ErrCorrupt):
		return fmt.Errorf("%s is a damaged gaffer store: %w", path, err)
	}
	return err
}

// findLive finds, for a store a process holds, its work directory (from
// the marker there, which names the store) and the leader's snapshot.
func (t *target) findLive() error {
	given := t.workDir != ""
	if !given {
		t.workDir = t.store + ".work"
	}
	store, _, err := gaffer.WorkDirStore(t.workDir)
	switch {
	case err != nil && !given && errors.Is(err, gaffer.ErrNotWorkDir) && looksLikeBolt(t.store):
		// A leader opens (and locks) its store before it marks its work
		// directory: it is starting, or its work directory is elsewhere.
		t.unmarked = true
		return nil
	case err != nil && !given:
		return fmt.Errorf("another process holds %s (a leader, or a program that is not gaffer), and %s is not its work directory; if a leader runs it with another work directory, give it with -workdir", t.path, t.workDir)
	case err != nil:
		return fmt.Errorf("%s: %w", t.path, err)
	case store != "" && store != t.store:
		return fmt.Errorf("another process holds %s, and %s is the work directory of another store (%s); give the work directory with -workdir", t.path, t.workDir, store)
	}
	s, err := gaffer.ReadLiveStatus(t.workDir)
	if err == nil && t.snapAlive(s) {
		t.snap = s
	}
	return nil
}

// snapAlive reports whether the process that wrote s still runs: on
// this host its pid is asked; elsewhere the snapshot must be fresh.
func (t *target) snapAlive(s *gaffer.LiveStatus) bool {
	host, _ := os.Hostname()
	if s.Host != "" && s.Host != host {
		return time.Since(s.Written) < staleAfter
	}
	return alive(s.PID)
}

// close releases the store.
func (t *target) close() {
	if t.db != nil {
		t.db.Close()
		t.db = nil
	}
	if t.release != nil {
		t.release()
		t.release = nil
	}
}

// live reports whether a leader runs the workflow now and has published
// its state: its snapshot is not its last.
func (t *target) live() bool { return t.held && t.snap != nil && !t.snap.Final }

// leaderLine describes the leader, or its absence, for people.
func (t *target) leaderLine() string {
	s := t.snap
	switch {
	case t.held && t.unmarked:
		return fmt.Sprintf("a process holds the store, and %s has no marker yet (a leader starting, or one whose work directory is elsewhere: give it with -workdir)", t.workDir)
	case t.held && s == nil:
		return "a process holds the store and has not published a live snapshot yet (a leader loading the workflow?)"
	case t.held && s.Final:
		return fmt.Sprintf("pid %d%s ended its run at %s and still holds the store", s.PID, onHost(s.Host), s.Written.Local().Format(time.DateTime))
	case t.held:
		return fmt.Sprintf("pid %d%s, running since %s; live snapshot %s old", s.PID, onHost(s.Host), s.Started.Local().Format(time.DateTime), age(s.Written))
	case s != nil && s.Final:
		return fmt.Sprintf("none (the last one, pid %d, ended its run at %s)", s.PID, s.Written.Local().Format(time.DateTime))
	case s != nil:
		return fmt.Sprintf("none (the last one, pid %d, stopped without ending its run; its last snapshot is from %s)", s.PID, s.Written.Local().Format(time.DateTime))
	}
	return "none"
}

func onHost(h string) string {
	if me, _ := os.Hostname(); h == "" || h == me {
		return ""
	}
	return " on " + h
}

func age(t time.Time) time.Duration {
	d := time.Since(t)
	if d < 0 {
		d = 0
	}
	return d.Round(100 * time.Millisecond)
}

// parseJob reads a job as status prints it (j12) or as its number.
func parseJob(s string) (jobstore.JobID, error) {
	digits := s
	if len(s) > 1 && (s[0] == 'j' || s[0] == 'J') {
		digits = s[1:]
	}
	var n uint64
	for _, c := range digits {
		if c < '0' || c > '9' || n > (1<<63)/10 {
			return 0, fmt.Errorf("job %q: want j<number> (as status prints it) or a number", s)
		}
		n = n*10 + uint64(c-'0')
	}
	if digits == "" || n == 0 {
		return 0, fmt.Errorf("job %q: want j<number> (as status prints it) or a number, from 1", s)
	}
	return jobstore.JobID(n), nil
}

// parseJobs reads every job argument.
func parseJobs(args []string) ([]jobstore.JobID, error) {
	ids := make([]jobstore.JobID, 0, len(args))
	for _, a := range args {
		id, err := parseJob(a)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// nextID is the first job ID the workflow has not given, as far as is
// known (0: not known).
func (t *target) nextID() jobstore.JobID {
	switch {
	case t.db != nil:
		return t.meta.NextID
	case t.snap != nil:
		return t.snap.NextID
	}
	return 0
}

// checkJob refuses a job the workflow has never had.
func (t *target) checkJob(id jobstore.JobID) error {
	if n := t.nextID(); n > 0 && id >= n {
		if n == 1 {
			return fmt.Errorf("%s: no job %s: the workflow has no jobs", t.path, id)
		}
		return fmt.Errorf("%s: no job %s: the workflow's jobs are j1 to j%d", t.path, id, uint64(n)-1)
	}
	return nil
}

// looksLikeBolt reports whether the file at path starts as a bbolt file
// does (its first meta page's magic number), or is still empty (bbolt
// has created it and not yet written it).
func looksLikeBolt(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [20]byte
	n, _ := io.ReadFull(f, b[:])
	if n == 0 {
		return true
	}
	// A page header of 16 bytes, then the meta page's magic, in the
	// machine's byte order.
	return n == len(b) && binary.NativeEndian.Uint32(b[16:]) == 0xED0CDAED
}
