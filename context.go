package gaffer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/gafferhq/gaffer/jobstore"
)

// JobID names a job in a workflow's store.
type JobID = jobstore.JobID

// FileID names a file in a workflow's file store.
type FileID = jobstore.FileID

// JobContext is what a running job knows about itself and what it can do
// to the workflow: add children and follow-ons, log, use a scratch
// directory and the workflow's file store. Its methods are safe for use by
// several goroutines of the job.
type JobContext struct {
	id      JobID
	kind    string
	name    string
	attempt int
	workDir string
	scratch string // set on first use

	logOut  io.Writer    // where the job's log goes
	logBase slog.Handler // the leader's handler, for in-process jobs; may be nil

	mu        sync.Mutex
	self      *node // stands for the running job in edges; made on first use (selfNode)
	logger    *slog.Logger
	files     *jobstore.Files
	forward   []byte
	forwardTo *node
}

func newJobContext(id JobID, kind, name string, attempt int, workDir string, logOut io.Writer, logBase slog.Handler) *JobContext {
	return &JobContext{
		id: id, kind: kind, name: name, attempt: attempt, workDir: workDir,
		logOut: logOut, logBase: logBase,
	}
}

// selfNode returns the node that stands for the running job, made the
// first time the job adds a successor or service: most jobs add none.
func (jc *JobContext) selfNode() *node {
	jc.mu.Lock()
	defer jc.mu.Unlock()
	if jc.self == nil {
		jc.self = &node{nodeSpec: &nodeSpec{kind: jc.kind, name: jc.name, req: &Requirements{}, retries: -1}}
	}
	return jc.self
}

// madeSelf returns the node selfNode made, or nil if the job added nothing.
func (jc *JobContext) madeSelf() *node {
	jc.mu.Lock()
	defer jc.mu.Unlock()
	return jc.self
}

// ID returns the job's ID in the store.
func (jc *JobContext) ID() JobID { return jc.id }

// Kind returns the job's registered type name.
func (jc *JobContext) Kind() string { return jc.kind }

// Attempt returns 1 on the job's first try, 2 on its first retry, and so on.
func (jc *JobContext) Attempt() int { return jc.attempt }

func (jc *JobContext) display() string { return jobstore.DisplayName(jc.name, jc.kind, jc.id.String()) }

// Logger returns a logger whose lines go to the job's log: the worker's
// log file for subprocess and cluster jobs, an in-memory tail (and the
// leader's logger, if it has one) for in-process jobs. The tail of the log
// of a failed job is part of the workflow's error.
func (jc *JobContext) Logger() *slog.Logger {
	jc.mu.Lock()
	defer jc.mu.Unlock()
	if jc.logger == nil {
		var h slog.Handler = slog.NewTextHandler(jc.logOut, &slog.HandlerOptions{Level: slog.LevelDebug})
		if jc.logBase != nil {
			h = teeHandler{h, jc.logBase}
		}
		jc.logger = slog.New(h).With("job_id", jc.id.String(), "job_kind", jc.kind, "attempt", jc.attempt)
	}
	return jc.logger
}

// ScratchDir returns a directory for the job's temporary files, made on
// first use and removed when the job ends.
func (jc *JobContext) ScratchDir() (string, error) {
	jc.mu.Lock()
	defer jc.mu.Unlock()
	if jc.scratch == "" {
		dir := filepath.Join(jc.workDir, "scratch")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", fmt.Errorf("gaffer: scratch dir: %w", err)
		}
		d, err := os.MkdirTemp(dir, fmt.Sprintf("%d-", uint64(jc.id)))
		if err != nil {
			return "", fmt.Errorf("gaffer: scratch dir: %w", err)
		}
		jc.scratch = d
	}
	return jc.scratch, nil
}

// Files returns the workflow's file store: write a file there and pass its
// FileID to a later job, import local files, export stored ones.
func (jc *JobContext) Files() (*jobstore.Files, error) {
	jc.mu.Lock()
	defer jc.mu.Unlock()
	if jc.files == nil {
		f, err := jobstore.NewFiles(filepath.Join(jc.workDir, "files"))
		if err != nil {
			return nil, err
		}
		jc.files = f
	}
	return jc.files, nil
}

// AddChild makes c run after this job, before its follow-ons. c's
// result is then available as a promise to jobs that run after c.
func (jc *JobContext) AddChild(c Node) { jc.selfNode().addEdge(c.node(), false) }

// AddFollowOn makes f run after this job's children and their whole
// subtrees have finished.
func (jc *JobContext) AddFollowOn(f Node) { jc.selfNode().addEdge(f.node(), true) }

// Forward makes the running job's return value the value p promises,
// typically the result of its follow-on. Use it as the job's return:
//
//	return gaffer.Forward(jc, sum.Result())
func Forward[T any](jc *JobContext, p Promise[T]) (T, error) {
	var zero T
	b, err := p.MarshalJSON()
	if err != nil {
		return zero, err
	}
	jc.mu.Lock()
	jc.forward = b
	jc.forwardTo, _, _, _ = p.target()
	jc.mu.Unlock()
	return zero, nil
}

func (jc *JobContext) takeForward() []byte {
	jc.mu.Lock()
	defer jc.mu.Unlock()
	f := jc.forward
	jc.forward = nil
	return f
}

func (jc *JobContext) cleanup() {
	if jc.scratch != "" {
		os.RemoveAll(jc.scratch)
	}
}

// teeHandler sends records to two handlers.
type teeHandler struct{ a, b slog.Handler }

func (t teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return t.a.Enabled(ctx, l) || t.b.Enabled(ctx, l)
}

func (t teeHandler) Handle(ctx context.Context, r slog.Record) error {
	var err error
	if t.a.Enabled(ctx, r.Level) {
		err = t.a.Handle(ctx, r.Clone())
	}
	if t.b.Enabled(ctx, r.Level) {
		if e := t.b.Handle(ctx, r); err == nil {
			err = e
		}
	}
	return err
}

func (t teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return teeHandler{t.a.WithAttrs(as), t.b.WithAttrs(as)}
}

func (t teeHandler) WithGroup(g string) slog.Handler {
	return teeHandler{t.a.WithGroup(g), t.b.WithGroup(g)}
}

// tailBuffer keeps the last max bytes written to it, and counts the
// bytes it dropped.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
	cut int64
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if over := t.buf.Len() - t.max; over > 0 {
		t.buf.Next(over)
		t.cut += int64(over)
	}
	return len(p), nil
}

// kept returns a copy of what is kept, and how many bytes were dropped
// before it.
func (t *tailBuffer) kept() ([]byte, int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return bytes.Clone(t.buf.Bytes()), t.cut
}

// last returns the last n bytes kept.
func (t *tailBuffer) last(n int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf.Bytes()
	return string(b[max(0, len(b)-n):])
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}
