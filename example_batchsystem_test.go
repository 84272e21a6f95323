package gaffer_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem"
)

// exSerial is a batch system that runs jobs in the leader's process, one
// at a time, in the order they were issued. It keeps the contract of
// batchsystem.BatchSystem: IDs are never 0, every job that ends is
// reported once, and a killed job is never reported. (A real adapter
// should pass batchsystem/batchsystemtest; see docs/adapters.md.)
type exSerial struct {
	mu       sync.Mutex
	closed   bool
	lastID   batchsystem.ID
	last     chan struct{}                   // closed once the job issued last is over
	jobs     map[batchsystem.ID]*exSerialJob // issued, not yet reported
	finished []batchsystem.FinishedJob       // ended, not yet reported
	notify   chan struct{}                   // a report is waiting
	ran      int                             // bodies run, for the example
}

type exSerialJob struct {
	cancel        context.CancelFunc
	started       time.Time // zero while queued
	ended, killed bool
	done          chan struct{} // closed once the job is over
}

func newExSerial() *exSerial {
	none := make(chan struct{})
	close(none)
	return &exSerial{last: none, jobs: map[batchsystem.ID]*exSerialJob{}, notify: make(chan struct{}, 1)}
}

// InProcess makes the leader hand over each job as JobSpec.Run, a
// function to call here, instead of a worker's command line.
func (s *exSerial) InProcess() bool { return true }

func (s *exSerial) Issue(_ context.Context, spec batchsystem.JobSpec) (batchsystem.ID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, batchsystem.ErrShutdown
	}
	// A job this machine could never run is refused now, not queued for
	// ever.
	if cores := runtime.NumCPU(); spec.Requirements.Cores > float64(cores) {
		return 0, &batchsystem.InsufficientResourcesError{JobID: spec.JobID, Name: spec.Name, System: "serial",
			Resource: "cores", Requested: fmt.Sprint(spec.Requirements.Cores), Available: fmt.Sprint(cores)}
	}
	s.lastID++
	ctx, cancel := context.WithCancel(context.Background())
	j := &exSerialJob{cancel: cancel, done: make(chan struct{})}
	s.jobs[s.lastID] = j
	go s.run(ctx, s.lastID, j, spec, s.last)
	s.last = j.done
	return s.lastID, nil
}

// run waits for the job issued before this one, then runs this one and
// reports it, unless it was killed meanwhile.
func (s *exSerial) run(ctx context.Context, id batchsystem.ID, j *exSerialJob, spec batchsystem.JobSpec, before chan struct{}) {
	defer close(j.done)
	defer j.cancel()
	<-before
	s.mu.Lock()
	if j.killed {
		s.mu.Unlock()
		return
	}
	j.started = time.Now()
	s.ran++
	s.mu.Unlock()

	err := spec.Run(ctx)
	f := batchsystem.FinishedJob{ID: id, Reason: batchsystem.Finished, WallTime: time.Since(j.started)}
	if err != nil {
		f.ExitCode, f.Message = 1, err.Error()
		var coder batchsystem.ExitCoder // an error may carry its own exit code
		if errors.As(err, &coder) {
			f.ExitCode = coder.ExitCode()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j.ended = true
	if !j.killed {
		s.finished = append(s.finished, f)
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
}

func (s *exSerial) WaitFinished(ctx context.Context, maxWait time.Duration) (*batchsystem.FinishedJob, error) {
	timeout := time.After(maxWait)
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, batchsystem.ErrShutdown
		}
		if len(s.finished) > 0 {
			f := s.finished[0]
			s.finished = s.finished[1:]
			delete(s.jobs, f.ID)
			s.mu.Unlock()
			return &f, nil
		}
		s.mu.Unlock()
		if maxWait <= 0 {
			return nil, nil
		}
		select {
		case <-s.notify:
		case <-timeout:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Kill forgets the jobs (a queued one will never start; an ended one is
// never reported) and waits for the running one to return.
func (s *exSerial) Kill(ctx context.Context, ids []batchsystem.ID) error {
	s.mu.Lock()
	var wait []*exSerialJob
	for _, id := range ids {
		j, ok := s.jobs[id]
		if !ok {
			continue
		}
		delete(s.jobs, id)
		s.finished = slices.DeleteFunc(s.finished, func(f batchsystem.FinishedJob) bool { return f.ID == id })
		j.killed = true
		j.cancel()
		if !j.started.IsZero() {
			wait = append(wait, j)
		}
	}
	s.mu.Unlock()
	for _, j := range wait {
		select {
		case <-j.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (s *exSerial) Issued(context.Context) ([]batchsystem.ID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, batchsystem.ErrShutdown
	}
	return slices.Collect(maps.Keys(s.jobs)), nil
}

func (s *exSerial) Running(context.Context) (map[batchsystem.ID]time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, batchsystem.ErrShutdown
	}
	running := map[batchsystem.ID]time.Duration{}
	for id, j := range s.jobs {
		if !j.started.IsZero() && !j.ended {
			running[id] = time.Since(j.started)
		}
	}
	return running, nil
}

func (s *exSerial) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	ids := slices.Collect(maps.Keys(s.jobs))
	s.mu.Unlock()
	return s.Kill(ctx, ids)
}

// Any batch system plugs in through Config.BatchSystem; the leader shuts
// it down only if it made it.
func ExampleConfig_batchSystem() {
	dir, err := os.MkdirTemp("", "gaffer-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	serial := newExSerial()
	defer serial.Shutdown(context.Background())
	leader, err := gaffer.NewLeader(gaffer.Config{Store: filepath.Join(dir, "workflow.db"), BatchSystem: serial})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer leader.Close()

	// exSumOfSquares (example_fanout_test.go): a root, a child per number
	// and a follow-on that sums.
	sum, err := gaffer.Run(context.Background(), leader, exSumOfSquares.New(4))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("1² + 2² + 3² + 4² =", sum)
	serial.mu.Lock()
	fmt.Println("jobs run by the adapter:", serial.ran)
	serial.mu.Unlock()
	// Output:
	// 1² + 2² + 3² + 4² = 30
	// jobs run by the adapter: 6
}
