package gaffer

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/gafferhq/gaffer/batchsystem"
)

// memTransport runs attempts in the leader's process: JobSpec.Run calls
// the job's function and leaves its outcome in a mailbox; a service
// reports its start to another and is stopped by closing its channel.
// Nothing survives the leader, so nothing is adopted.
type memTransport struct {
	log     *slog.Logger
	keep    keepLogs
	flights *inflight // attempts whose bodies run now (inflight.go); made at the first issue

	mu      sync.Mutex
	mail    map[uint64]*outcome // outcomes by issue number
	started []startReport
	stops   map[uint64]chan struct{} // services' stop channels by issue number
}

func newMemTransport(log *slog.Logger, keep keepLogs) *memTransport {
	return &memTransport{log: log, keep: keep, mail: map[uint64]*outcome{}, stops: map[uint64]chan struct{}{}}
}

func (t *memTransport) prepare(env *envelope, spec *batchsystem.JobSpec) error {
	if t.flights == nil {
		f, err := openInflight(t.keep.workDir)
		if err != nil {
			return err
		}
		t.flights = f
	}
	seq := env.Seq
	var hooks *svcHooks
	if env.Service {
		stop := make(chan struct{})
		t.mu.Lock()
		t.stops[seq] = stop
		t.mu.Unlock()
		hooks = &svcHooks{stop: stop, started: func(v []byte) error {
			t.mu.Lock()
			t.started = append(t.started, startReport{Job: env.Job, Epoch: env.Epoch, Seq: seq, Value: v})
			t.mu.Unlock()
			return nil
		}}
	}
	spec.Run = func(ctx context.Context) error {
		tail := &tailBuffer{max: int(max(t.keep.limit, logTailMax))}
		slot := t.flights.enter(attempt{job: env.Job, epoch: env.Epoch, seq: seq})
		out := runJob(ctx, env, tail, t.log.Handler(), hooks)
		t.flights.leave(slot)
		if !out.OK {
			out.LogTail = tail.last(logTailMax)
		}
		if !t.keep.wants(out.OK) {
			// Most attempts: nothing to keep.
		} else if b, cut := tail.kept(); len(b) > 0 {
			a := attempt{job: env.Job, epoch: env.Epoch, seq: seq}
			path, err := keepLogBytes(t.keep.workDir, a, b, cut, t.keep.limit)
			if err != nil {
				t.log.Warn("keeping a job's log", "job_id", env.Job.String(), "err", err)
			} else {
				out.keptLog = path
			}
		}
		t.mu.Lock()
		t.mail[seq] = out
		t.mu.Unlock()
		if !out.OK {
			return errors.New(out.Error)
		}
		return nil
	}
	return nil
}

func (t *memTransport) diesWithLeader() bool { return true }

func (t *memTransport) adopt(attempt, *batchsystem.JobSpec) bool { return false }

func (t *memTransport) take(a attempt, _ *batchsystem.FinishedJob) taken {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := t.mail[a.seq]
	delete(t.mail, a.seq)
	if out == nil {
		return taken{}
	}
	return taken{out: out, log: out.keptLog}
}

func (t *memTransport) starts() ([]startReport, func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.started
	t.started = nil
	return r, func() {}
}

func (t *memTransport) stop(a attempt) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ch, ok := t.stops[a.seq]; ok {
		close(ch)
		delete(t.stops, a.seq)
	}
	return nil
}

func (t *memTransport) forget(a attempt) {
	t.mu.Lock()
	defer t.mu.Unlock()
	// An outcome a killed or lost attempt may have left is never taken.
	delete(t.mail, a.seq)
	delete(t.stops, a.seq)
}

func (t *memTransport) close() error { return t.flights.close() }
