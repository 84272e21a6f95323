package gaffer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/internal/procgroup"
)

// poolTransport carries attempts to worker processes that live on and run
// jobs one after another (batchsystem.WorkerPooler, local.Workers): this
// same binary started with WorkerArg and poolArg, fed envelopes over its
// standard input and answering over its standard output, in frames
// (pool_frame.go). The batch system schedules the attempt and calls
// JobSpec.Run, which takes an idle worker started with the job's
// GOMAXPROCS (its cores rounded up, as dirTransport.workerEnv sets), or
// starts one, sends it the job and leaves the outcome in a mailbox, as
// memTransport does. Nothing goes through the work directory: no job
// folder, no input or result file, no fsync. A job that calls
// JobContext.ScratchDir gets its directory under the work directory, as
// elsewhere.
//
// A job's log is what its worker writes to standard error (and to
// standard output, which the worker points there) while the job runs,
// the Logger's lines included, as in a one-process-per-job worker's log
// file: the leader reads each worker's standard error into a bounded
// tail, cut at a marker line the worker writes after each job.
//
// Workers die with their leader: on Linux and FreeBSD by a parent-death
// signal, everywhere by seeing the end of their input pipe, at which they
// exit at once, mid-job or not, and kill their process group. So no pool
// job ends while its leader is down and no result waits for the next
// leader: the attempts a dead leader had running are run again, and
// nothing of them runs on beside their next attempt. Nothing is adopted.
//
// A worker that dies mid-job (a crash, os.Exit, a kill), or whose channel
// breaks (bytes that are not a frame), fails that attempt only, with its
// exit status and the tail of its log; the attempt is retried as any
// failure is, and other workers are untouched. Cancelling Run's context
// (the batch system's Kill, a time limit) kills the worker's process
// group, and the worker is not reused. A worker is recycled (its input
// closed: it exits) after PoolOptions.JobsPerWorker jobs, or when its
// resident memory after a job passes PoolOptions.MaxRSS. At most
// PoolOptions.MaxIdle workers wait idle, each for at most
// PoolOptions.IdleTimeout; close stops them all.
type poolTransport struct {
	log     *slog.Logger
	keep    keepLogs
	workDir string
	command []string
	env     map[string]string
	opts    batchsystem.PoolOptions

	startMu sync.Mutex       // one process start at a time
	envs    map[int][]string // process environments by GOMAXPROCS, under startMu

	mu       sync.Mutex
	idle     []*poolWorker // longest idle first
	live     map[*poolWorker]struct{}
	mail     map[uint64]taken // what ended attempts left, by issue number
	started  []startReport
	svcs     map[uint64]*poolWorker // services' workers by issue number
	closed   bool
	reaping  bool
	stopReap chan struct{}
}

// The pool's defaults (batchsystem.PoolOptions).
const (
	poolMaxIdle       = 4
	poolJobsPerWorker = 1000
	poolMaxRSS        = 1 << 30
	poolIdleTimeout   = 10 * time.Second
)

var errPoolClosed = errors.New("the worker pool is closed")

func newPoolTransport(opts batchsystem.PoolOptions, cfg Config, keep keepLogs, log *slog.Logger) *poolTransport {
	if opts.MaxIdle <= 0 {
		opts.MaxIdle = poolMaxIdle
	}
	if opts.JobsPerWorker <= 0 {
		opts.JobsPerWorker = poolJobsPerWorker
	}
	if opts.MaxRSS <= 0 {
		opts.MaxRSS = poolMaxRSS
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = poolIdleTimeout
	}
	return &poolTransport{
		log: log, keep: keep, workDir: cfg.WorkDir, command: cfg.WorkerCommand, env: cfg.WorkerEnv, opts: opts,
		envs: map[int][]string{}, live: map[*poolWorker]struct{}{}, mail: map[uint64]taken{},
		svcs: map[uint64]*poolWorker{}, stopReap: make(chan struct{}),
	}
}

func (t *poolTransport) prepare(env *envelope, spec *batchsystem.JobSpec) error {
	procs := 0 // the user's GOMAXPROCS: one kind of worker
	if _, set := t.env["GOMAXPROCS"]; !set {
		procs = max(1, int(math.Ceil(spec.Requirements.Cores)))
	}
	spec.Run = func(ctx context.Context) error { return t.run(ctx, env, procs) }
	return nil
}

// poolError is an attempt whose worker could not run it to its end: it
// carries the worker's exit code for the batch system's report.
type poolError struct {
	code int
	msg  string
}

func (e *poolError) Error() string { return e.msg }
func (e *poolError) ExitCode() int { return e.code }

// run is an attempt's JobSpec.Run: it runs env on a worker of procs.
func (t *poolTransport) run(ctx context.Context, env *envelope, procs int) error {
	body, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("encoding job %s's input: %w", env.Job, err)
	}
	w, err := t.get(procs)
	if err != nil {
		return &poolError{code: batchsystem.ExitUnavailable, msg: "could not start a pool worker: " + err.Error()}
	}
	seq := env.Seq
	if env.Service {
		t.mu.Lock()
		t.svcs[seq] = w
		t.mu.Unlock()
	}
	w.begin(seq)
	if err := w.send(frameJob, body); err != nil {
		return t.lost(w, env, fmt.Errorf("sending the job: %w", err))
	}
	select {
	case b := <-w.replies:
		var r poolReply
		if err := json.Unmarshal(b, &r); err != nil || r.Out == nil || r.Out.Job != env.Job || r.Out.Epoch != env.Epoch || r.Out.Seq != seq {
			return t.lost(w, env, fmt.Errorf("a reply that is not the job's (%v)", err))
		}
		out := r.Out
		tk := taken{out: out}
		if !out.OK || t.keep.wants(true) {
			log := w.logOf(seq)
			if !out.OK && out.LogTail == "" {
				out.LogTail = log.last(logTailMax)
			}
			tk.log = t.keepLog(env, log, out.OK)
		}
		t.release(w, r.RSS)
		t.mu.Lock()
		t.mail[seq] = tk
		t.mu.Unlock()
		if !out.OK {
			return errors.New(out.Error)
		}
		return nil
	case <-w.broken:
		return t.lost(w, env, w.brokenErr)
	case <-ctx.Done():
		t.kill(w)
		return ctx.Err()
	}
}

// keepLog keeps an attempt's log as Config.LogLimit and KeepSuccessLogs
// say, and returns where.
func (t *poolTransport) keepLog(env *envelope, log *tailBuffer, ok bool) string {
	if !t.keep.wants(ok) {
		return ""
	}
	b, cut := log.kept()
	if len(b) == 0 {
		return ""
	}
	path, err := keepLogBytes(t.keep.workDir, attempt{job: env.Job, epoch: env.Epoch, seq: env.Seq}, b, cut, t.keep.limit)
	if err != nil {
		t.log.Warn("keeping a job's log", "job_id", env.Job.String(), "err", err)
		return ""
	}
	return path
}

// lost ends an attempt whose worker died or broke: the worker is killed,
// and the attempt fails with how the worker ended and the tail of its log.
func (t *poolTransport) lost(w *poolWorker, env *envelope, why error) error {
	t.kill(w)
	<-w.exited
	select {
	case <-w.logEOF:
	case <-time.After(time.Second): // a grandchild holds the pipe
	}
	log := w.current()
	code, msg := batchsystem.ExitUnavailable, ""
	st := w.cmd.ProcessState
	switch ws, _ := st.Sys().(syscall.WaitStatus); {
	case !errors.Is(why, errNotFrame) && st.Exited():
		code = st.ExitCode()
		msg = fmt.Sprintf("its pool worker (pid %d) exited with code %d during the job", w.pid, code)
	case !errors.Is(why, errNotFrame) && ws.Signaled():
		code = 128 + int(ws.Signal())
		msg = fmt.Sprintf("its pool worker (pid %d) was killed by signal %s during the job", w.pid, ws.Signal())
	default:
		msg = fmt.Sprintf("the channel to its pool worker (pid %d) broke: %v; the worker was killed", w.pid, why)
	}
	tk := taken{tail: log.last(logTailMax), log: t.keepLog(env, log, false)}
	t.mu.Lock()
	t.mail[env.Seq] = tk
	t.mu.Unlock()
	return &poolError{code: code, msg: msg}
}

// get takes an idle worker of procs, or starts one.
func (t *poolTransport) get(procs int) (*poolWorker, error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, errPoolClosed
	}
	for i := len(t.idle) - 1; i >= 0; i-- {
		w := t.idle[i]
		if w.procs != procs {
			continue
		}
		t.idle = slices.Delete(t.idle, i, i+1)
		select {
		case <-w.broken: // died while idle
			continue
		default:
		}
		t.mu.Unlock()
		return w, nil
	}
	t.mu.Unlock()
	return t.start(procs)
}

// release takes a worker back after a job: it waits idle, or is recycled.
func (t *poolTransport) release(w *poolWorker, rss int64) {
	w.jobs++
	if w.jobs >= t.opts.JobsPerWorker || rss > t.opts.MaxRSS {
		w.retire()
		return
	}
	w.idleSince = time.Now()
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		w.retire()
		return
	}
	t.idle = append(t.idle, w)
	var drop []*poolWorker
	if over := len(t.idle) - t.opts.MaxIdle; over > 0 {
		drop = slices.Clone(t.idle[:over])
		t.idle = slices.Delete(t.idle, 0, over)
	}
	if !t.reaping {
		t.reaping = true
		go t.reap()
	}
	t.mu.Unlock()
	for _, d := range drop {
		d.retire()
	}
}

// reap ends workers idle for longer than IdleTimeout.
func (t *poolTransport) reap() {
	tick := time.NewTicker(max(t.opts.IdleTimeout/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-t.stopReap:
			return
		case now := <-tick.C:
			t.mu.Lock()
			n := 0
			for n < len(t.idle) && now.Sub(t.idle[n].idleSince) > t.opts.IdleTimeout {
				n++
			}
			drop := slices.Clone(t.idle[:n])
			t.idle = slices.Delete(t.idle, 0, n)
			t.mu.Unlock()
			for _, w := range drop {
				w.retire()
			}
		}
	}
}

// kill kills w and what it started; it is not reused.
func (t *poolTransport) kill(w *poolWorker) {
	procgroup.Kill(w.cmd.Process)
	w.in.Close()
}

// environ is the environment of a worker of procs: this process's, the
// user's WorkerEnv, and GOMAXPROCS.
func (t *poolTransport) environ(procs int) []string {
	if env, ok := t.envs[procs]; ok {
		return env
	}
	env := os.Environ()
	for k, v := range t.env {
		env = append(env, k+"="+v)
	}
	if procs > 0 {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(procs))
	}
	t.envs[procs] = env
	return env
}

// start starts a worker of procs. Starts are one at a time: a burst of
// forks at once contends in the kernel (batchsystem/local's spawner).
func (t *poolTransport) start(procs int) (*poolWorker, error) {
	t.startMu.Lock()
	defer t.startMu.Unlock()
	var files []*os.File
	pipe := func() (r, w *os.File) {
		r, w, err := os.Pipe()
		if err == nil {
			files = append(files, r, w)
		}
		return r, w
	}
	inR, inW := pipe()
	outR, outW := pipe()
	errR, errW := pipe()
	if len(files) < 6 {
		for _, f := range files {
			f.Close()
		}
		return nil, errors.New("could not make its pipes")
	}
	nonce := rand.Text()
	cmd := exec.Command(t.command[0], slices.Concat(t.command[1:], []string{WorkerArg, poolArg})...)
	cmd.Dir = t.workDir
	cmd.Env = append(slices.Clip(t.environ(procs)), envPoolNonce+"="+nonce)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	cmd.SysProcAttr = procgroup.Attr()
	err := cmd.Start()
	inR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		errR.Close()
		return nil, err
	}
	w := &poolWorker{
		t: t, cmd: cmd, pid: cmd.Process.Pid, procs: procs, in: inW,
		send0:   &poolSender{w: bufio.NewWriterSize(inW, 64<<10)},
		replies: make(chan []byte, 1), broken: make(chan struct{}),
		exited: make(chan struct{}), logEOF: make(chan struct{}),
		mark: []byte("\x00gaffer-end " + nonce + " "), logMax: int(max(t.keep.limit, logTailMax)),
	}
	w.cur = w.newLog()
	go w.readReplies(outR)
	go w.readLog(errR)
	go w.wait()
	t.mu.Lock()
	closed := t.closed
	if !closed {
		t.live[w] = struct{}{}
	}
	t.mu.Unlock()
	if closed {
		t.kill(w)
		return nil, errPoolClosed
	}
	t.log.Debug("pool worker started", "pid", w.pid, "gomaxprocs", procs)
	return w, nil
}

func (t *poolTransport) adopt(attempt, *batchsystem.JobSpec) bool { return false }

// diesWithLeader is true: a pool worker exits when its leader's pipe
// closes (and on Linux and FreeBSD at its parent's death), and its
// outcome reaches no store but through its leader.
func (t *poolTransport) diesWithLeader() bool { return true }

func (t *poolTransport) take(a attempt, _ *batchsystem.FinishedJob) taken {
	t.mu.Lock()
	defer t.mu.Unlock()
	tk := t.mail[a.seq]
	delete(t.mail, a.seq)
	return tk
}

func (t *poolTransport) starts() ([]startReport, func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.started
	t.started = nil
	return r, func() {}
}

func (t *poolTransport) stop(a attempt) error {
	t.mu.Lock()
	w := t.svcs[a.seq]
	t.mu.Unlock()
	if w == nil {
		return nil
	}
	return w.send(frameStop, binary.LittleEndian.AppendUint64(nil, a.seq))
}

func (t *poolTransport) forget(a attempt) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.mail, a.seq)
	delete(t.svcs, a.seq)
}

// close kills every worker and waits for them to exit.
func (t *poolTransport) close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	if t.reaping {
		close(t.stopReap)
	}
	t.idle = nil
	ws := make([]*poolWorker, 0, len(t.live))
	for w := range t.live {
		ws = append(ws, w)
	}
	t.mu.Unlock()
	for _, w := range ws {
		t.kill(w)
	}
	for _, w := range ws {
		<-w.exited
	}
	return nil
}

// poolWorker is the leader's side of one worker process.
type poolWorker struct {
	t     *poolTransport
	cmd   *exec.Cmd
	pid   int
	procs int
	in    *os.File
	send0 *poolSender

	replies   chan []byte   // the job's reply
	broken    chan struct{} // closed when the channel fails: brokenErr says how
	brokenErr error
	exited    chan struct{} // closed once the process is reaped
	logEOF    chan struct{} // closed at the end of its standard error

	jobs      int       // jobs run, by the goroutine that holds it
	idleSince time.Time // under t.mu

	// The log: its standard error, cut at the marker after each job.
	mark    []byte
	logMax  int
	logMu   sync.Mutex
	cur     *tailBuffer   // the running job's
	wantSeq uint64        // the job whose log is waited for
	ended   chan struct{} // closed when its marker is read
	endLog  *tailBuffer
}

func (w *poolWorker) newLog() *tailBuffer { return &tailBuffer{max: w.logMax} }

func (w *poolWorker) send(kind byte, body []byte) error { return w.send0.send(kind, body) }

// retire ends an idle worker: at the end of its input it exits.
func (w *poolWorker) retire() { w.in.Close() }

func (w *poolWorker) wait() {
	_ = w.cmd.Wait()
	// Whatever a job left behind in its group (the worker kills its
	// group itself when it sees its input end; not when it crashes).
	procgroup.Kill(w.cmd.Process)
	close(w.exited)
	w.in.Close()
	w.t.mu.Lock()
	delete(w.t.live, w)
	w.t.mu.Unlock()
}

// readReplies reads the worker's frames until its standard output ends
// or carries something that is not a frame.
func (w *poolWorker) readReplies(f *os.File) {
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	for {
		kind, body, err := readFrame(r)
		if err == nil {
			switch kind {
			case frameReply:
				select {
				case w.replies <- body:
					continue
				default:
					err = fmt.Errorf("a reply to no job: %w", errNotFrame)
				}
			case frameStarted:
				var rep startReport
				if err = json.Unmarshal(body, &rep); err == nil {
					w.t.mu.Lock()
					w.t.started = append(w.t.started, rep)
					w.t.mu.Unlock()
					continue
				}
			default:
				err = fmt.Errorf("a frame of unknown kind %q: %w", kind, errNotFrame)
			}
		}
		w.brokenErr = err
		close(w.broken)
		return
	}
}

// readLog reads the worker's standard error into the running job's log,
// and hands a job's log over at the marker line the worker writes after
// the job.
func (w *poolWorker) readLog(f *os.File) {
	defer close(w.logEOF)
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	for {
		line, err := r.ReadSlice('\n')
		i := -1
		if err == nil {
			i = bytes.Index(line, w.mark)
		}
		w.logMu.Lock()
		if i < 0 {
			w.cur.Write(line)
		} else {
			w.cur.Write(line[:i])
			seq, _ := strconv.ParseUint(string(bytes.TrimSpace(line[i+len(w.mark):])), 10, 64)
			done := w.cur
			w.cur = w.newLog()
			if w.ended != nil && seq == w.wantSeq {
				w.endLog = done
				close(w.ended)
				w.ended = nil
			}
		}
		w.logMu.Unlock()
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// begin marks the start of job seq, before it is sent.
func (w *poolWorker) begin(seq uint64) {
	w.logMu.Lock()
	w.wantSeq, w.ended, w.endLog = seq, make(chan struct{}), nil
	w.logMu.Unlock()
}

// logOf returns job seq's log once its marker is read; after a second
// without it (a line too long to scan whole), what was read so far.
func (w *poolWorker) logOf(seq uint64) *tailBuffer {
	w.logMu.Lock()
	ch := w.ended
	if ch == nil {
		defer w.logMu.Unlock()
		return w.endLog
	}
	w.logMu.Unlock()
	timer := time.NewTimer(time.Second)
	defer timer.Stop()
	select {
	case <-ch:
		w.logMu.Lock()
		defer w.logMu.Unlock()
		return w.endLog
	case <-timer.C:
		return w.current()
	}
}

// current returns the log read since the last marker.
func (w *poolWorker) current() *tailBuffer {
	w.logMu.Lock()
	defer w.logMu.Unlock()
	return w.cur
}
