// Package batchsystem defines the interface between gaffer's leader and the
// systems that run its jobs: goroutines in the leader's process, local
// subprocesses, Slurm, or a user's own adapter.
//
// The contract follows Toil's AbstractBatchSystem (see docs/toil-differences.md):
//
//   - Issue queues one job and returns an ID that is unique for the life of
//     the BatchSystem value and never 0.
//   - Every issued job that stops is reported exactly once by WaitFinished,
//     unless it was killed: a job passed to Kill is never reported.
//   - Issued lists jobs issued and not yet reported (queued or running);
//     Running lists the jobs actually running with how long each has run.
//
// A batch system runs a job either in the leader's process, by calling
// JobSpec.Run, or as a worker process, by running JobSpec.Command. A batch
// system that calls Run says so by implementing InProcess; the leader then
// skips writing the job's input to its folder.
package batchsystem

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gafferhq/gaffer/gaffertype"
)

// ID names an issued job inside one BatchSystem. It is never 0.
type ID int64

// Accelerator and Requirements are the shared types of gaffertype, named
// here too because every batch system speaks them.
type (
	Accelerator  = gaffertype.Accelerator
	Requirements = gaffertype.Requirements
)

// JobSpec is one job handed to a BatchSystem.
type JobSpec struct {
	JobID        string       // gaffer's ID of the job, for names and logs
	Name         string       // human-readable name of the job
	Kind         string       // registered job type; the scaler learns runtimes per kind
	Attempt      int          // 1 for the first try
	Requirements Requirements // filled in: no zero means "default" here

	// Command is the worker's argv: the program that runs the job as a
	// separate process. Batch systems that start processes run it.
	Command []string
	// Env holds extra environment variables for Command.
	Env map[string]string
	// Dir is the job's folder under the workflow's work directory. The
	// worker reads its input there and writes its result there.
	Dir string
	// LogPath is where the batch system should send the worker's standard
	// output and error. Empty means the batch system's own choice.
	LogPath string

	// WorkDir is the workflow's work directory, which every worker sees
	// at the same path (Dir is inside it). A batch system that groups
	// jobs keeps its queue there. Empty when the leader has none.
	WorkDir string
	// PilotCommand, if set, is the argv of a pilot: a worker of the same
	// program that runs many jobs of a queue folder one after another
	// (package batchsystem/pilot). The batch system appends the queue's
	// root and the pilot's name. Empty: the job cannot be grouped, and
	// gets a submission of its own.
	PilotCommand []string

	// Run runs the job inside the calling process. It is set only for batch
	// systems that implement InProcess and report true. Its error is the
	// job's failure; a nil error is exit code 0.
	Run func(ctx context.Context) error
}

// ExitReason says why a job stopped.
type ExitReason int

// The reasons a job stops, after Toil's BatchJobExitReason.
const (
	Finished       ExitReason = iota + 1 // the worker exited on its own (success or failure: see ExitCode)
	Failed                               // the batch system says the job failed
	Lost                                 // the node or the job's allocation went away (preemption, node failure)
	Killed                               // killed by the batch system (not by Kill: those are never reported)
	Error                                // the batch system could not run the job at all
	MemLimit                             // killed for using more memory than it asked for
	Missing                              // the batch system stopped knowing the job (set by the leader's rescue)
	MaxJobDuration                       // ran longer than the maximum job duration (set by the leader's rescue)
	Partition                            // exited 0 but its result never reached the leader
)

var reasonNames = [...]string{"", "finished", "failed", "lost", "killed", "error", "memlimit", "missing", "maxjobduration", "partition"}

func (r ExitReason) String() string {
	if r > 0 && int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("ExitReason(%d)", int(r))
}

// ExitUnavailable is the exit code reported when the real one is not known.
const ExitUnavailable = 255

// FinishedJob reports one job that stopped.
type FinishedJob struct {
	ID        ID
	ExitCode  int           // 0 is success; ExitUnavailable when unknown
	Reason    ExitReason    // why it stopped
	WallTime  time.Duration // how long it ran; 0 when unknown
	BackingID string        // the job's ID in the backing scheduler (a Slurm job ID), if any
	Node      string        // the machine that ran it, if the batch system knows
	Message   string        // a short explanation for a human, if any
}

// BatchSystem runs jobs for a leader. Implementations must be safe for use
// by several goroutines, though gaffer's leader calls them from one.
type BatchSystem interface {
	// Issue queues a job. A job whose requirements can never be met must be
	// refused here, with an error that errors.Is ErrInsufficientResources.
	Issue(ctx context.Context, spec JobSpec) (ID, error)
	// Kill stops the given jobs. When Kill returns they are not running and
	// will never be reported by WaitFinished. Unknown IDs are ignored.
	Kill(ctx context.Context, ids []ID) error
	// Issued lists jobs issued and not yet reported, queued or running.
	Issued(ctx context.Context) ([]ID, error)
	// Running lists the running jobs and how long each has run.
	Running(ctx context.Context) (map[ID]time.Duration, error)
	// WaitFinished waits at most maxWait for a job to stop and reports it.
	// It returns (nil, nil) when maxWait passes with nothing to report;
	// a maxWait of 0 checks without blocking.
	WaitFinished(ctx context.Context, maxWait time.Duration) (*FinishedJob, error)
	// Shutdown kills every job still issued and releases the system's
	// resources. Calls after Shutdown fail with ErrShutdown.
	Shutdown(ctx context.Context) error
}

// InProcess is implemented by batch systems that run JobSpec.Run in the
// leader's process instead of starting JobSpec.Command.
type InProcess interface {
	InProcess() bool
}

// SchedulingStatuser is implemented by batch systems that can say why
// queued jobs are not running, for deadlock and "why is this waiting"
// messages.
type SchedulingStatuser interface {
	// SchedulingStatus explains why the job is not running yet, or returns
	// "" when it has nothing to say.
	SchedulingStatus(id ID) string
}

// ErrShutdown is returned by calls on a BatchSystem after Shutdown.
var ErrShutdown = errors.New("batchsystem: shut down")

// ErrInsufficientResources is matched (through errors.Is) by the error
// from Issue for a job that no machine of the batch system can ever run.
var ErrInsufficientResources = errors.New("batchsystem: requirements can never be met")

// InsufficientResourcesError names the job, the resource and the amounts
// for a job that asks for more than the batch system can ever give.
type InsufficientResourcesError struct {
	JobID     string // gaffer's job ID
	Name      string // the job's name
	Resource  string // "cores", "memory", "disk" or "accelerators"
	Requested string
	Available string
	System    string // which batch system refused
}

func (e *InsufficientResourcesError) Error() string {
	return fmt.Sprintf("batchsystem: job %s (%s) requests %s %s, more than the %s that %s can ever provide",
		e.JobID, e.Name, e.Requested, e.Resource, e.Available, e.System)
}

// Is reports that e is an ErrInsufficientResources.
func (e *InsufficientResourcesError) Is(target error) bool { return target == ErrInsufficientResources }

// Adopter is implemented by batch systems whose jobs outlive the leader
// that issued them, such as a cluster scheduler. The leader records each
// job's backing ID; a later leader on the same store adopts the jobs still
// known to the scheduler instead of issuing them again.
type Adopter interface {
	// BackingID returns the backing scheduler's ID of an issued job.
	BackingID(id ID) (string, bool)
	// Adopt tracks a job that an earlier leader issued under backing,
	// as if Issue had just returned it. spec must describe the same job.
	Adopt(ctx context.Context, spec JobSpec, backing string) (ID, error)
}

// Releaser is implemented by batch systems that keep capacity between
// jobs, such as pilots that run many grouped jobs. The leader calls
// Release when its workflow has ended (or stopped) and it has killed what
// it issued: capacity held for jobs that will not come is given back at
// once, instead of after an idle timeout. Jobs still issued are not
// affected, and later Issue calls work as before.
type Releaser interface {
	Release(ctx context.Context) error
}

// Clock is implemented by batch systems that keep their own time, such as
// a simulated cluster running in virtual time. A leader on such a system
// measures retry backoffs and scaling intervals on that clock, and runs
// the scaler's passes itself instead of on a timer.
type Clock interface {
	Now() time.Time
}

// ExitCoder is implemented by errors that carry a process-style exit
// code: an in-process job (JobSpec.Run) returning one is reported with
// that code; other errors are reported as exit code 1.
type ExitCoder interface{ ExitCode() int }

// WorkerPooler is implemented by batch systems that call JobSpec.Run (as
// in-process ones do) but want each job to run in a worker process of a
// pool the leader keeps: the same binary in worker mode, started once and
// fed one job after another (local.Workers). Run then sends the job to an
// idle worker and waits for its outcome; cancelling Run's context kills
// that worker. Such a batch system reports InProcess false: its jobs do
// not run in the leader's process.
type WorkerPooler interface {
	// WorkerPool reports whether jobs run in a pool, and how the pool
	// behaves.
	WorkerPool() (PoolOptions, bool)
}

// PoolOptions shape a pool of worker processes. Zero values take the
// defaults given.
type PoolOptions struct {
	// MaxIdle is how many idle workers are kept: as many as could run at
	// once. 0 means 4.
	MaxIdle int
	// JobsPerWorker recycles a worker after this many jobs; 0 means 1000.
	JobsPerWorker int
	// MaxRSS recycles a worker whose resident memory, after a job, is
	// past this many bytes; 0 means 1 GiB.
	MaxRSS int64
	// IdleTimeout ends a worker that has been idle this long; 0 means 10
	// seconds.
	IdleTimeout time.Duration
}
