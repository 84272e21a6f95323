package gaffer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"time"

	"github.com/gafferhq/gaffer/batchsystem/pilot"
	"github.com/gafferhq/gaffer/services"
)

// WorkerArg is the first argument that starts a program in worker mode.
const WorkerArg = pilot.WorkerArg

// ServeWorker turns the program into a gaffer worker when it was started
// as one, and returns at once otherwise. Call it first thing in main (and
// in TestMain, for tests that use subprocess workers):
//
//	func main() {
//		gaffer.ServeWorker()
//		...
//	}
//
// In worker mode it runs one job and exits the process: it reads the
// job's input from the job's folder, runs the registered function, writes
// the result (return value, new successors, timings) to the folder by
// temporary file and rename, and exits 0 on success, 1 on failure. As a
// pool worker (local.Workers) it runs jobs one after another, fed by its
// leader over a pipe, until the leader closes the pipe or dies. Started
// with pilot.Arg instead, it is a pilot (package batchsystem/pilot): it
// runs many jobs, each as a worker process.
func ServeWorker() {
	if len(os.Args) >= 2 && os.Args[1] == pilot.Arg { // a pilot: many jobs, each its own worker process
		os.Exit(pilot.Main(os.Args[2:]))
	}
	if len(os.Args) < 2 || os.Args[1] != WorkerArg {
		return
	}
	if len(os.Args) == 3 && os.Args[2] == poolArg {
		os.Exit(poolWorkerMain())
	}
	if len(os.Args) == 3 && os.Args[2] == pilot.FolderArg {
		os.Exit(folderWorkerMain()) // a pilot's reused worker (worker_folders_unix.go)
	}
	os.Exit(workerMain(os.Args[2:]))
}

// envelope is a job's input file: everything a worker needs.
type envelope struct {
	Job     JobID           `json:"job"`
	Kind    string          `json:"kind"`
	Name    string          `json:"name,omitempty"`
	Attempt int             `json:"attempt"`
	Epoch   uint64          `json:"epoch"`
	Seq     uint64          `json:"seq"`
	WorkDir string          `json:"work_dir"`
	Input   json.RawMessage `json:"input"`
	// For a service: how often to check it and look for the stop flag.
	Service     bool          `json:"service,omitempty"`
	ServicePoll time.Duration `json:"service_poll,omitempty"`
}

// outcome is what running a job produced: the result file's content.
type outcome struct {
	Job       JobID           `json:"job"`
	Attempt   int             `json:"attempt"`
	Epoch     uint64          `json:"epoch"`
	Seq       uint64          `json:"seq"`
	OK        bool            `json:"ok"`
	Error     string          `json:"error,omitempty"`
	Permanent bool            `json:"permanent,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Graph     *fragment       `json:"graph,omitempty"`
	LogTail   string          `json:"log_tail,omitempty"`
	Started   time.Time       `json:"started"`
	// The worker process's CPU time and peak resident memory (bytes),
	// where the platform tells; 0 in-process.
	CPU    time.Duration `json:"cpu,omitempty"`
	MaxRSS int64         `json:"max_rss,omitempty"`
	// keptLog is where the transport kept the attempt's log, if it did.
	keptLog string
	Ended   time.Time `json:"ended"`
}

// logTailMax is how much of a failed attempt's log its error keeps.
const logTailMax = 4 << 10

// startReport is what a service host reports once Start has returned.
type startReport struct {
	Job   JobID           `json:"job"`
	Epoch uint64          `json:"epoch"`
	Seq   uint64          `json:"seq"`
	Value json.RawMessage `json:"value"`
}

// svcHooks connect a service host to its leader: how to report the
// start, and how it learns to stop.
type svcHooks struct {
	started       func([]byte) error
	stop          <-chan struct{}
	stopRequested func() bool
}

// runJob runs one job body and reports what it produced. It never
// panics: a panic in the body is a failure of the job.
func runJob(ctx context.Context, env *envelope, logOut io.Writer, logBase slog.Handler, hooks *svcHooks) (out *outcome) {
	out = &outcome{Job: env.Job, Attempt: env.Attempt, Epoch: env.Epoch, Seq: env.Seq, Started: time.Now()}
	jc := newJobContext(env.Job, env.Kind, env.Name, env.Attempt, env.WorkDir, logOut, logBase)
	defer func() {
		jc.cleanup()
		if r := recover(); r != nil {
			out.OK, out.Error = false, fmt.Sprintf("panic: %v\n%s", r, debug.Stack())
		}
		out.Ended = time.Now()
	}()
	reg, ok := lookupType(env.Kind)
	if !ok {
		out.Error = fmt.Errorf("%w: job %s has type %q, which this program has not registered", ErrUnknownJobType, jc.display(), env.Kind).Error()
		out.Permanent = true
		return out
	}
	if env.Service != (reg.host != nil) {
		out.Error = fmt.Errorf("%w: %s: %q is registered as a job type and used as a service, or the other way round", ErrUnknownJobType, jc.display(), env.Kind).Error()
		out.Permanent = true
		return out
	}
	if reg.host != nil {
		if hooks == nil {
			hooks = &svcHooks{started: func([]byte) error { return errors.New("no leader to report to") }}
		}
		err := reg.host(ctx, jc, env.Input, hooks.started, hooks.stop,
			services.Options{PollInterval: env.ServicePoll, StopRequested: hooks.stopRequested})
		if err != nil {
			var pe *permanentError
			out.Permanent = errors.As(err, &pe)
			out.Error = err.Error()
			return out
		}
		out.OK, out.Result = true, json.RawMessage("null")
		return out
	}
	res, err := reg.run(ctx, jc, env.Input)
	if self := jc.madeSelf(); err == nil && self != nil {
		out.Graph, err = collect(self, slices.Concat(self.edges().children, self.edges().followOns, self.edges().services))
		if err != nil {
			err = &permanentError{fmt.Errorf("job %s: %w", jc.display(), err)}
		}
	}
	if err != nil {
		var pe *permanentError
		out.Permanent = errors.As(err, &pe)
		out.Error = err.Error()
		out.Graph = nil
		return out
	}
	out.OK, out.Result = true, res
	return out
}
