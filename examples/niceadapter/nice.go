//go:build unix

package niceadapter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
)

// Options configure a System.
type Options struct {
	// Slots is how many workers run at once; 0 means runtime.NumCPU().
	// Jobs issued while every slot is busy wait in a queue.
	Slots int
	// Niceness is nice's -n; 0 means 10.
	Niceness int
}

type job struct {
	id      batchsystem.ID
	spec    batchsystem.JobSpec
	cmd     *exec.Cmd
	started time.Time
	killed  bool          // by Kill or Shutdown: never reported
	done    chan struct{} // closed once the worker is reaped
}

// System runs workers under nice. Create it with New.
type System struct {
	opts Options

	mu       sync.Mutex
	closed   bool
	nextID   batchsystem.ID
	queue    []*job // issued, waiting for a slot, oldest first
	running  map[batchsystem.ID]*job
	finished []batchsystem.FinishedJob // ended, not yet reported
	notify   chan struct{}             // a report is waiting
}

var (
	_ batchsystem.BatchSystem        = (*System)(nil)
	_ batchsystem.SchedulingStatuser = (*System)(nil)
)

// New returns a System.
func New(opts Options) (*System, error) {
	if opts.Slots < 0 {
		return nil, fmt.Errorf("niceadapter: %d slots", opts.Slots)
	}
	if opts.Slots == 0 {
		opts.Slots = runtime.NumCPU()
	}
	if opts.Niceness == 0 {
		opts.Niceness = 10
	}
	if _, err := exec.LookPath("nice"); err != nil {
		return nil, fmt.Errorf("niceadapter: %w", err)
	}
	return &System{opts: opts, running: map[batchsystem.ID]*job{}, notify: make(chan struct{}, 1)}, nil
}

// Issue queues a job. Jobs that ask for more cores than this machine has,
// or for accelerators, could never run and are refused.
func (s *System) Issue(ctx context.Context, spec batchsystem.JobSpec) (batchsystem.ID, error) {
	if len(spec.Command) == 0 {
		return 0, fmt.Errorf("niceadapter: job %s has no command", spec.JobID)
	}
	if err := refuse(spec); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, batchsystem.ErrShutdown
	}
	s.nextID++
	s.queue = append(s.queue, &job{id: s.nextID, spec: spec, done: make(chan struct{})})
	s.startLocked()
	return s.nextID, nil
}

func refuse(spec batchsystem.JobSpec) error {
	e := &batchsystem.InsufficientResourcesError{JobID: spec.JobID, Name: spec.Name, System: "niceadapter"}
	switch r := spec.Requirements; {
	case r.Cores > float64(runtime.NumCPU()):
		e.Resource, e.Requested, e.Available = "cores", fmt.Sprint(r.Cores), strconv.Itoa(runtime.NumCPU())
	case r.AcceleratorCount("") > 0:
		e.Resource, e.Requested, e.Available = "accelerators", strconv.Itoa(r.AcceleratorCount("")), "0"
	default:
		return nil
	}
	return e
}

// startLocked starts queued jobs while slots are free.
func (s *System) startLocked() {
	for len(s.queue) > 0 && len(s.running) < s.opts.Slots {
		j := s.queue[0]
		s.queue = s.queue[1:]
		s.running[j.id] = j
		j.started = time.Now()
		if err := s.startWorker(j); err != nil {
			delete(s.running, j.id)
			close(j.done)
			s.reportLocked(batchsystem.FinishedJob{ID: j.id, ExitCode: batchsystem.ExitUnavailable,
				Reason: batchsystem.Error, Message: "could not start worker: " + err.Error()})
		}
	}
}

// startWorker starts `nice -n N command...`: nice execs the command, so
// the process is the worker itself.
func (s *System) startWorker(j *job) error {
	args := append([]string{"-n", strconv.Itoa(s.opts.Niceness)}, j.spec.Command...)
	cmd := exec.Command("nice", args...)
	cmd.Dir = j.spec.Dir
	cmd.Env = os.Environ()
	for k, v := range j.spec.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	// A process group of its own, so that killing the group kills what
	// the worker started; and death with the leader (procAttr).
	cmd.SysProcAttr = procAttr()
	var log *os.File
	if j.spec.LogPath != "" {
		f, err := os.OpenFile(j.spec.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		log = f
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		if log != nil {
			log.Close()
		}
		return err
	}
	j.cmd = cmd
	go s.reap(j, log)
	return nil
}

// reap waits for a worker to end and reports it, unless it was killed.
func (s *System) reap(j *job, log *os.File) {
	err := j.cmd.Wait()
	// Whatever the worker left running in its group goes with it.
	_ = syscall.Kill(-j.cmd.Process.Pid, syscall.SIGKILL)
	if log != nil {
		log.Close()
	}
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	case err != nil:
		code = batchsystem.ExitUnavailable
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.running, j.id)
	close(j.done)
	if !j.killed && !s.closed {
		s.reportLocked(batchsystem.FinishedJob{ID: j.id, ExitCode: code, Reason: batchsystem.Finished, WallTime: time.Since(j.started)})
	}
	s.startLocked()
}

func (s *System) reportLocked(f batchsystem.FinishedJob) {
	s.finished = append(s.finished, f)
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Kill stops jobs: queued ones leave the queue and never start, running
// ones are killed with their process group, and ended ones not yet
// reported are never reported. It returns once the killed workers are
// reaped.
func (s *System) Kill(ctx context.Context, ids []batchsystem.ID) error {
	s.mu.Lock()
	var wait []*job
	for _, id := range ids {
		s.queue = slices.DeleteFunc(s.queue, func(j *job) bool { return j.id == id })
		s.finished = slices.DeleteFunc(s.finished, func(f batchsystem.FinishedJob) bool { return f.ID == id })
		if j, ok := s.running[id]; ok {
			j.killed = true
			_ = syscall.Kill(-j.cmd.Process.Pid, syscall.SIGKILL)
			wait = append(wait, j)
		}
	}
	s.mu.Unlock()
	return awaitAll(ctx, wait)
}

func awaitAll(ctx context.Context, jobs []*job) error {
	for _, j := range jobs {
		select {
		case <-j.done:
		case <-ctx.Done():
			return fmt.Errorf("niceadapter: waiting for killed workers: %w", ctx.Err())
		}
	}
	return nil
}

// Issued lists queued, running and ended-but-unreported jobs.
func (s *System) Issued(ctx context.Context) ([]batchsystem.ID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, batchsystem.ErrShutdown
	}
	var ids []batchsystem.ID
	for _, j := range s.queue {
		ids = append(ids, j.id)
	}
	for id := range s.running {
		ids = append(ids, id)
	}
	for _, f := range s.finished {
		ids = append(ids, f.ID)
	}
	return ids, nil
}

// Running lists running jobs and how long each has run.
func (s *System) Running(ctx context.Context) (map[batchsystem.ID]time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, batchsystem.ErrShutdown
	}
	out := make(map[batchsystem.ID]time.Duration, len(s.running))
	for id, j := range s.running {
		out[id] = time.Since(j.started)
	}
	return out, nil
}

// WaitFinished reports the next job that ended, waiting up to maxWait.
func (s *System) WaitFinished(ctx context.Context, maxWait time.Duration) (*batchsystem.FinishedJob, error) {
	timer := time.NewTimer(maxWait)
	defer timer.Stop()
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, batchsystem.ErrShutdown
		}
		if len(s.finished) > 0 {
			f := s.finished[0]
			s.finished = s.finished[1:]
			s.mu.Unlock()
			return &f, nil
		}
		s.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if maxWait <= 0 {
			return nil, nil
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

// Shutdown drops the queue and kills every running worker, with its
// process group, before it returns.
func (s *System) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.queue = nil
	var wait []*job
	for _, j := range s.running {
		j.killed = true
		_ = syscall.Kill(-j.cmd.Process.Pid, syscall.SIGKILL)
		wait = append(wait, j)
	}
	s.mu.Unlock()
	return awaitAll(ctx, wait)
}

// SchedulingStatus says why a queued job has not started.
func (s *System) SchedulingStatus(id batchsystem.ID) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, j := range s.queue {
		if j.id == id {
			return fmt.Sprintf("waiting for a slot: all %d busy, %d job(s) ahead", s.opts.Slots, i)
		}
	}
	return ""
}
