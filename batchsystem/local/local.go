// Package local is a BatchSystem that runs jobs on this machine: as
// goroutines in the leader's process (fastest), in a pool of worker
// processes that live on and run jobs one after another (Workers), or as
// one worker process per job (Subprocess, the same path a cluster batch
// system uses, for jobs that must not share a process).
//
// Resources (job slots, cores in tenths, memory, disk, accelerators) are
// accounted all-or-nothing: a job starts only when all it asks for is
// free. Queued jobs are grouped by shape, and a job that does not fit does
// not hold back smaller jobs queued behind it. A job that could never fit
// on this machine is refused by Issue.
//
// Caveats:
//   - In-process jobs cannot be killed, only asked to stop: Kill cancels the
//     job's context and waits up to Options.KillGrace for it to return.
//   - A job that keeps fitting behind a big one can starve the big one, as
//     in Toil's single-machine batch system; give big jobs their own run.
//   - In Workers mode jobs are scheduled as in-process ones are, and
//     JobSpec.Run (set by the leader's pool transport) runs each in a
//     worker process of the leader's pool; Kill cancels Run's context,
//     which kills that worker and its process group. Pool workers die
//     with their leader on every system, as they see their input pipe
//     end (see gaffer's transport_pool.go); on Windows what a job
//     started outlives them, as with Subprocess.
//   - Subprocesses run in their own process group, which Kill and the end
//     of the job both kill, so nothing they start outlives them (on Unix;
//     see below for Windows). Shutdown kills them all.
//
// What happens to worker subprocesses when the leader dies without
// calling Shutdown (SIGKILL, a crash) depends on the operating system
// (WorkersDieWithLeader):
//
//   - Linux and FreeBSD: each worker gets a parent-death signal (SIGKILL),
//     so it dies with the leader. A leader that restarts finds either a
//     worker's result or nothing.
//   - macOS and other Unix systems have no parent-death signal. Workers
//     of a leader killed hard run on to their end and write their result;
//     a leader that restarts takes the results of those that finished,
//     and kills an orphan still running in a job's folder, with its
//     process group, before it runs that job again (PIDFile).
//   - Windows has neither process groups nor parent-death signals: Kill
//     and Shutdown kill the worker process only, not processes it
//     started, and orphans of a leader killed hard are found by pid as on
//     macOS.
//
// Memory and disk defaults come from /proc/meminfo or sysctl (hw.memsize,
// hw.physmem) and statfs; on Windows from GlobalMemoryStatusEx and
// GetDiskFreeSpaceEx.
package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
)

// Mode chooses how jobs run.
type Mode int

const (
	// InProcess runs JobSpec.Run in a goroutine of the calling process.
	InProcess Mode = iota
	// Subprocess starts JobSpec.Command as a child process, one per job.
	Subprocess
	// Workers runs each job in a worker process of a pool that the
	// leader keeps (batchsystem.WorkerPooler): the same binary in worker
	// mode, fed one job after another over a pipe. Jobs are scheduled as
	// in-process ones are, and JobSpec.Run sends the job to a worker;
	// Kill kills that worker. A job that crashes its worker loses only
	// itself. Options.Pool shapes the pool.
	Workers
)

func (m Mode) String() string {
	switch m {
	case Subprocess:
		return "subprocess"
	case Workers:
		return "workers"
	}
	return "in-process"
}

// Options configure a local batch system. The zero value runs jobs
// in-process with this machine's cores, memory and disk.
type Options struct {
	Mode Mode
	// Cores is the number of cores to hand out; 0 means runtime.NumCPU().
	Cores float64
	// Memory and Disk are bytes to hand out; 0 means this machine's total
	// memory and the free space of the temporary directory.
	Memory int64
	Disk   int64
	// Accelerators is the number of GPUs to hand out; 0 means none.
	Accelerators int
	// MaxJobs caps jobs running at once; 0 means no cap beyond resources.
	MaxJobs int
	// EnforceMemory holds each worker process to its memory request: on
	// Linux its data segment is capped (RLIMIT_DATA, which covers a Go
	// program's heap), and a worker that runs out of it is reported with
	// batchsystem.MemLimit, so that the leader can retry the job with
	// more memory (gaffer.MoreMemoryOnRetry). Elsewhere it does nothing.
	// Off by default: a Go process needs a few tens of MiB to start.
	EnforceMemory bool
	// Pool shapes the pool of worker processes in Workers mode; zero
	// fields take batchsystem.PoolOptions' defaults, and MaxIdle defaults
	// to the number of jobs that could run at once: MaxJobs, or else one
	// per tenth of a core.
	Pool batchsystem.PoolOptions
	// KillGrace is how long Kill waits for an in-process job to return
	// after its context is cancelled; 0 means 10 seconds.
	KillGrace time.Duration
	// Logger receives debug lines; nil means silence.
	Logger *slog.Logger
}

// coreUnit is the accounting grain for cores: Toil's 0.1 core.
const coreUnit = 0.1

type shape struct {
	cores  int64 // in coreUnits
	memory int64
	disk   int64
	accel  int
}

type job struct {
	id      batchsystem.ID
	seq     uint64
	spec    batchsystem.JobSpec
	need    shape
	started time.Time
	ctx     context.Context // ended by Kill and Shutdown
	cancel  context.CancelFunc
	cmd     *exec.Cmd
	done    chan struct{}
	killed  bool
}

// System is the local batch system. Create it with New.
type System struct {
	opts  Options
	total shape
	log   *slog.Logger

	mu       sync.Mutex
	closed   bool
	nextID   batchsystem.ID
	seq      uint64
	free     shape
	slots    int // running jobs
	queues   map[shape][]*job
	idle     chan *job // in-process runners waiting for a job (runner)
	queued   int
	running  map[batchsystem.ID]*job
	finished []batchsystem.FinishedJob // reported in order, from fhead on
	fhead    int                       // reports before it were taken; the array is reused
	notify   chan struct{}
	toSpawn  []*job // subprocess jobs started in accounting, not yet as processes
	spawning bool   // a spawner goroutine is running
}

var (
	_ batchsystem.BatchSystem  = (*System)(nil)
	_ batchsystem.WorkerPooler = (*System)(nil)
)

// New returns a local batch system.
func New(opts Options) (*System, error) {
	if opts.Cores < 0 || opts.Memory < 0 || opts.Disk < 0 || opts.Accelerators < 0 || opts.MaxJobs < 0 {
		return nil, fmt.Errorf("local: negative resource in options %+v", opts)
	}
	if opts.Cores == 0 {
		opts.Cores = float64(runtime.NumCPU())
	}
	if opts.Memory == 0 {
		opts.Memory = machineMemory()
	}
	if opts.Disk == 0 {
		opts.Disk = freeDisk(os.TempDir())
	}
	if opts.KillGrace == 0 {
		opts.KillGrace = 10 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	total := shape{cores: int64(math.Floor(opts.Cores/coreUnit + 1e-9)), memory: opts.Memory, disk: opts.Disk, accel: opts.Accelerators}
	if total.cores < 1 {
		return nil, fmt.Errorf("local: %v cores is less than the smallest unit, %v", opts.Cores, coreUnit)
	}
	return &System{
		opts: opts, total: total, free: total, log: log,
		queues:  make(map[shape][]*job),
		running: make(map[batchsystem.ID]*job),
		notify:  make(chan struct{}, 1),
		idle:    make(chan *job),
	}, nil
}

// InProcess reports whether jobs run in this process (JobSpec.Run).
func (s *System) InProcess() bool { return s.opts.Mode == InProcess }

// WorkerPool reports whether jobs run in a pool of worker processes
// (Workers mode), and how that pool behaves.
func (s *System) WorkerPool() (batchsystem.PoolOptions, bool) {
	o := s.opts.Pool
	if o.MaxIdle == 0 {
		o.MaxIdle = s.opts.MaxJobs
		if o.MaxIdle == 0 {
			o.MaxIdle = int(min(s.total.cores, 1024))
		}
	}
	return o, s.opts.Mode == Workers
}

func need(r batchsystem.Requirements) shape {
	// Round cores up to the grain, with a floor of one grain, as Toil does.
	c := int64(math.Ceil(r.Cores/coreUnit - 1e-9))
	if c < 1 {
		c = 1
	}
	return shape{cores: c, memory: r.Memory, disk: r.Disk, accel: r.AcceleratorCount("")}
}

func (s *System) refuse(spec batchsystem.JobSpec, n shape) error {
	t := s.total
	if n.cores <= t.cores && n.memory <= t.memory && n.disk <= t.disk && n.accel <= t.accel {
		return nil // most jobs: no error to build
	}
	e := &batchsystem.InsufficientResourcesError{JobID: spec.JobID, Name: spec.Name, System: "the local batch system (" + s.opts.Mode.String() + ")"}
	switch {
	case n.cores > s.total.cores:
		e.Resource, e.Requested, e.Available = "cores", fmtCores(n.cores), fmtCores(s.total.cores)
	case n.memory > s.total.memory:
		e.Resource, e.Requested, e.Available = "memory", fmtBytes(n.memory), fmtBytes(s.total.memory)
	case n.disk > s.total.disk:
		e.Resource, e.Requested, e.Available = "disk", fmtBytes(n.disk), fmtBytes(s.total.disk)
	case n.accel > s.total.accel:
		e.Resource, e.Requested, e.Available = "accelerators", strconv.Itoa(n.accel), strconv.Itoa(s.total.accel)
	default:
		return nil
	}
	return e
}

// Issue queues a job, refusing one bigger than this machine.
func (s *System) Issue(ctx context.Context, spec batchsystem.JobSpec) (batchsystem.ID, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if s.opts.Mode != Subprocess && spec.Run == nil {
		return 0, fmt.Errorf("local: job %s: %s mode needs JobSpec.Run", spec.JobID, s.opts.Mode)
	}
	if s.opts.Mode == Subprocess && len(spec.Command) == 0 {
		return 0, fmt.Errorf("local: job %s: subprocess mode needs JobSpec.Command", spec.JobID)
	}
	n := need(spec.Requirements)
	if err := s.refuse(spec, n); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, batchsystem.ErrShutdown
	}
	s.nextID++
	s.seq++
	j := &job{id: s.nextID, seq: s.seq, spec: spec, need: n, done: make(chan struct{})}
	s.queues[n] = append(s.queues[n], j)
	s.queued++
	s.startLocked()
	return j.id, nil
}

func (s *System) fits(n shape) bool {
	return n.cores <= s.free.cores && n.memory <= s.free.memory && n.disk <= s.free.disk &&
		n.accel <= s.free.accel && (s.opts.MaxJobs == 0 || s.slots < s.opts.MaxJobs)
}

// startLocked starts queued jobs while any fits, oldest first among the
// heads of the per-shape queues. Its cost is the number of distinct shapes
// per start, not the number of queued jobs.
func (s *System) startLocked() {
	for s.queued > 0 {
		var best *job
		for n, q := range s.queues {
			if len(q) > 0 && s.fits(n) && (best == nil || q[0].seq < best.seq) {
				best = q[0]
			}
		}
		if best == nil {
			return // SchedulingStatus says why, when asked
		}
		q := s.queues[best.need]
		q[0] = nil
		if len(q) == 1 {
			delete(s.queues, best.need)
		} else {
			s.queues[best.need] = q[1:]
		}
		s.queued--
		s.free.cores -= best.need.cores
		s.free.memory -= best.need.memory
		s.free.disk -= best.need.disk
		s.free.accel -= best.need.accel
		s.slots++
		s.running[best.id] = best
		best.started = time.Now()
		s.launchLocked(best)
	}
}

func (s *System) blockedReasonLocked() string {
	var oldest *job
	for _, q := range s.queues {
		if len(q) > 0 && (oldest == nil || q[0].seq < oldest.seq) {
			oldest = q[0]
		}
	}
	if oldest == nil {
		return ""
	}
	return s.whyLocked(oldest)
}

func (s *System) whyLocked(j *job) string {
	n := j.need
	switch {
	case s.opts.MaxJobs > 0 && s.slots >= s.opts.MaxJobs:
		return fmt.Sprintf("job slots: all %d in use", s.opts.MaxJobs)
	case n.cores > s.free.cores:
		return fmt.Sprintf("not enough cores: needs %s, %s of %s free", fmtCores(n.cores), fmtCores(s.free.cores), fmtCores(s.total.cores))
	case n.memory > s.free.memory:
		return fmt.Sprintf("not enough memory: needs %s, %s of %s free", fmtBytes(n.memory), fmtBytes(s.free.memory), fmtBytes(s.total.memory))
	case n.disk > s.free.disk:
		return fmt.Sprintf("not enough disk: needs %s, %s of %s free", fmtBytes(n.disk), fmtBytes(s.free.disk), fmtBytes(s.total.disk))
	case n.accel > s.free.accel:
		return fmt.Sprintf("not enough accelerators: needs %d, %d free", n.accel, s.free.accel)
	}
	return "queued behind older jobs"
}

// SchedulingStatus says why a queued job has not started.
func (s *System) SchedulingStatus(id batchsystem.ID) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id == 0 {
		// Built when asked, not at every start that finds no room: a
		// fan-out would format it for each job it queues.
		return s.blockedReasonLocked()
	}
	if _, ok := s.running[id]; ok {
		return ""
	}
	for _, q := range s.queues {
		for _, j := range q {
			if j.id == id {
				return s.whyLocked(j)
			}
		}
	}
	return ""
}

// launchLocked starts j; its goroutine reports the end through finish.
func (s *System) launchLocked(j *job) {
	ctx, cancel := context.WithCancel(context.Background())
	j.ctx, j.cancel = ctx, cancel
	if s.opts.Mode != Subprocess {
		select {
		case s.idle <- j: // a goroutine that ran a job before takes it
		default:
			go s.runner(j)
		}
		return
	}
	// Starting a process takes milliseconds; a spawner goroutine does it
	// outside the lock, so that Issue returns at once, and one process at
	// a time: twenty forks at once on two cores contend in the kernel and
	// start fewer processes per second than one after another.
	s.toSpawn = append(s.toSpawn, j)
	if !s.spawning {
		s.spawning = true
		go s.spawner()
	}
}

// runner runs in-process jobs, j first, then any that launchLocked hands
// it while it waits, until it has waited runnerIdle for one. Reusing
// goroutines keeps the stacks they grew: a fresh goroutine per job grows
// its stack again, copying it, for every job of a fan-out.
func (s *System) runner(j *job) {
	var t *time.Timer
	for {
		code, msg := runInProcess(j.ctx, j.spec)
		s.finish(j, code, msg)
		if t == nil {
			t = time.NewTimer(runnerIdle)
		} else {
			t.Reset(runnerIdle)
		}
		select {
		case j = <-s.idle:
			t.Stop()
		case <-t.C:
			return
		}
	}
}

// runnerIdle is how long an in-process runner waits for another job.
const runnerIdle = time.Second

// spawner starts queued processes one after another until none is left.
func (s *System) spawner() {
	for {
		s.mu.Lock()
		if len(s.toSpawn) == 0 {
			s.spawning = false
			s.mu.Unlock()
			return
		}
		j := s.toSpawn[0]
		s.toSpawn[0] = nil
		s.toSpawn = s.toSpawn[1:]
		s.mu.Unlock()
		s.spawn(j)
	}
}

func (s *System) spawn(j *job) {
	if pid := reapOrphan(j.spec.Dir); pid != 0 {
		s.log.Warn("killed a worker an earlier leader left running", "pid", pid, "job_id", j.spec.JobID, "dir", j.spec.Dir)
	}
	cmd, err := s.command(j.spec)
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		s.finish(j, batchsystem.ExitUnavailable, "could not start worker: "+err.Error())
		return
	}
	writePIDFile(j.spec.Dir, cmd.Process.Pid)
	if s.opts.EnforceMemory && j.spec.Requirements.Memory > 0 {
		if err := limitMemory(cmd.Process.Pid, j.spec.Requirements.Memory); err != nil {
			s.log.Warn("could not limit a worker's memory", "job_id", j.spec.JobID, "err", err)
		}
	}
	s.mu.Lock()
	j.cmd = cmd
	if j.killed {
		// Killed while starting.
		killTree(cmd.Process)
	}
	s.mu.Unlock()
	go s.wait(j, cmd)
}

// wait reaps a started worker and reports it.
func (s *System) wait(j *job, cmd *exec.Cmd) {
	err := cmd.Wait()
	// Kill whatever the worker left behind in its process group.
	killTree(cmd.Process)
	removePIDFile(j.spec.Dir, cmd.Process.Pid)
	if f, ok := cmd.Stdout.(*os.File); ok {
		f.Close()
	}
	code, msg := exitCode(err)
	reason := batchsystem.Finished
	if code != 0 && s.opts.EnforceMemory && memoryEnforced && ranOutOfMemory(j.spec.LogPath) {
		reason = batchsystem.MemLimit
		msg = "it ran out of its memory request of " + fmtBytes(j.spec.Requirements.Memory) + " (RLIMIT_DATA)"
	}
	s.finishAs(j, code, reason, msg)
}

// ranOutOfMemory reports whether the end of a worker's log says the Go
// runtime could not get memory.
func ranOutOfMemory(logPath string) bool {
	if logPath == "" {
		return false
	}
	f, err := os.Open(logPath)
	if err != nil {
		return false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false
	}
	b := make([]byte, min(st.Size(), 64<<10))
	n, _ := f.ReadAt(b, st.Size()-int64(len(b)))
	return bytes.Contains(b[:n], []byte("runtime: out of memory")) || bytes.Contains(b[:n], []byte("cannot allocate memory"))
}

// ExitCoder is batchsystem.ExitCoder.
type ExitCoder = batchsystem.ExitCoder

func runInProcess(ctx context.Context, spec batchsystem.JobSpec) (code int, msg string) {
	defer func() {
		if r := recover(); r != nil {
			code, msg = 1, fmt.Sprintf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	err := spec.Run(ctx)
	if err == nil {
		return 0, ""
	}
	var ec ExitCoder
	if errors.As(err, &ec) && ec.ExitCode() != 0 {
		return ec.ExitCode(), err.Error()
	}
	return 1, err.Error()
}

func exitCode(err error) (int, string) {
	if err == nil {
		return 0, ""
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), "killed by signal " + ws.Signal().String()
		}
		return ee.ExitCode(), ""
	}
	return batchsystem.ExitUnavailable, err.Error()
}

func (s *System) command(spec batchsystem.JobSpec) (*exec.Cmd, error) {
	cmd := exec.Command(spec.Command[0], spec.Command[1:]...)
	cmd.Dir = spec.Dir
	if len(spec.Env) > 0 {
		env := os.Environ()
		for k, v := range spec.Env {
			env = append(env, k+"="+v)
		}
		cmd.Env = env
	}
	cmd.SysProcAttr = procAttr()
	if spec.LogPath != "" {
		f, err := os.OpenFile(spec.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		cmd.Stdout, cmd.Stderr = f, f
	}
	return cmd, nil
}

func (s *System) finish(j *job, code int, msg string) { s.finishAs(j, code, batchsystem.Finished, msg) }

func (s *System) finishAs(j *job, code int, reason batchsystem.ExitReason, msg string) {
	wall := time.Since(j.started)
	j.cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	close(j.done)
	if _, ok := s.running[j.id]; ok {
		s.releaseLocked(j)
	}
	if j.killed || s.closed {
		return
	}
	s.finished = append(s.finished, batchsystem.FinishedJob{
		ID: j.id, ExitCode: code, Reason: reason, WallTime: wall, Message: msg, Node: hostname,
	})
	select {
	case s.notify <- struct{}{}:
	default:
	}
	s.startLocked()
}

func (s *System) releaseLocked(j *job) {
	delete(s.running, j.id)
	s.free.cores += j.need.cores
	s.free.memory += j.need.memory
	s.free.disk += j.need.disk
	s.free.accel += j.need.accel
	s.slots--
}

// Kill stops the given jobs; they are never reported.
func (s *System) Kill(ctx context.Context, ids []batchsystem.ID) error {
	s.mu.Lock()
	var wait []*job
	for _, id := range ids {
		if j, ok := s.running[id]; ok {
			j.killed = true
			j.cancel()
			if j.cmd != nil {
				killTree(j.cmd.Process)
			}
			wait = append(wait, j)
			continue
		}
		if s.dequeueLocked(id) {
			continue
		}
		// Finished but not yet reported: drop the report.
		s.finished = append(s.finished[:s.fhead], slices.DeleteFunc(s.finished[s.fhead:], func(f batchsystem.FinishedJob) bool { return f.ID == id })...)
	}
	s.mu.Unlock()
	return s.awaitKilled(ctx, wait)
}

func (s *System) awaitKilled(ctx context.Context, wait []*job) error {
	grace := time.NewTimer(s.opts.KillGrace)
	defer grace.Stop()
	for _, j := range wait {
		select {
		case <-j.done:
		case <-ctx.Done():
			return ctx.Err()
		case <-grace.C:
			// An in-process job that ignores its context cannot be
			// stopped; give its resources back and stop waiting.
			s.mu.Lock()
			if _, ok := s.running[j.id]; ok {
				s.releaseLocked(j)
				s.startLocked()
			}
			s.mu.Unlock()
			s.log.Warn("in-process job ignored cancellation; abandoned", "batch_id", j.id, "job_id", j.spec.JobID)
		}
	}
	return nil
}

func (s *System) dequeueLocked(id batchsystem.ID) bool {
	for n, q := range s.queues {
		for i, j := range q {
			if j.id == id {
				s.queues[n] = slices.Delete(q, i, i+1)
				if len(s.queues[n]) == 0 {
					delete(s.queues, n)
				}
				s.queued--
				return true
			}
		}
	}
	return false
}

// Issued lists queued, running and finished-but-unreported jobs.
func (s *System) Issued(ctx context.Context) ([]batchsystem.ID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, batchsystem.ErrShutdown
	}
	ids := make([]batchsystem.ID, 0, s.queued+len(s.running)+len(s.finished)-s.fhead)
	for _, q := range s.queues {
		for _, j := range q {
			ids = append(ids, j.id)
		}
	}
	for id := range s.running {
		ids = append(ids, id)
	}
	for _, f := range s.finished[s.fhead:] {
		ids = append(ids, f.ID)
	}
	slices.Sort(ids)
	return ids, nil
}

// Running lists running jobs with how long each has run.
func (s *System) Running(ctx context.Context) (map[batchsystem.ID]time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, batchsystem.ErrShutdown
	}
	now := time.Now()
	out := make(map[batchsystem.ID]time.Duration, len(s.running))
	for id, j := range s.running {
		out[id] = now.Sub(j.started)
	}
	return out, nil
}

// WaitFinished reports the next job that stopped, waiting up to maxWait.
func (s *System) WaitFinished(ctx context.Context, maxWait time.Duration) (*batchsystem.FinishedJob, error) {
	var timer *time.Timer
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, batchsystem.ErrShutdown
		}
		if s.fhead < len(s.finished) {
			f := new(batchsystem.FinishedJob)
			*f = s.finished[s.fhead]
			s.finished[s.fhead] = batchsystem.FinishedJob{}
			if s.fhead++; s.fhead == len(s.finished) {
				// All taken: reuse the array, unless a burst made it big.
				s.finished, s.fhead = s.finished[:0], 0
				if cap(s.finished) > 4096 {
					s.finished = nil
				}
			}
			s.mu.Unlock()
			return f, nil
		}
		s.mu.Unlock()
		if maxWait <= 0 {
			return nil, ctx.Err()
		}
		if timer == nil {
			timer = time.NewTimer(maxWait)
			defer timer.Stop()
		}
		select {
		case <-s.notify:
		case <-timer.C:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Shutdown kills every job and refuses further calls.
func (s *System) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	clear(s.queues)
	s.queued = 0
	var wait []*job
	for _, j := range s.running {
		j.killed = true
		j.cancel()
		if j.cmd != nil {
			killTree(j.cmd.Process)
		}
		wait = append(wait, j)
	}
	s.mu.Unlock()
	return s.awaitKilled(ctx, wait)
}

func fmtCores(units int64) string {
	return strconv.FormatFloat(float64(units)*coreUnit, 'f', -1, 64) + " cores"
}

func fmtBytes(n int64) string {
	const gi = 1 << 30
	const mi = 1 << 20
	switch {
	case n >= gi:
		return strconv.FormatFloat(float64(n)/gi, 'f', 2, 64) + " GiB"
	case n >= mi:
		return strconv.FormatFloat(float64(n)/mi, 'f', 2, 64) + " MiB"
	}
	return strconv.FormatInt(n, 10) + " B"
}

// hostname names the machine in the jobs' reports.
var hostname, _ = os.Hostname()
