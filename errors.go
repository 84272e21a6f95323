package gaffer

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/gafferhq/gaffer/jobstore"
)

// Sentinel errors. Errors returned by gaffer wrap these with detail, so
// test for them with errors.Is.
var (
	// ErrJobTypeTaken: a job type name was registered twice.
	ErrJobTypeTaken = errors.New("gaffer: job type name already registered")
	// ErrNotEncodable: a job type's input or output type cannot be JSON-encoded.
	ErrNotEncodable = errors.New("gaffer: type cannot be JSON-encoded")
	// ErrUnknownJobType: a stored or issued job names a type this program
	// has not registered.
	ErrUnknownJobType = errors.New("gaffer: unknown job type")
	// ErrBadInput: a job's input could not be encoded or decoded.
	ErrBadInput = errors.New("gaffer: bad job input")
	// ErrInvalidGraph: a job graph has a cycle, a second root, a self edge,
	// a duplicate edge, or a job that belongs to another graph.
	ErrInvalidGraph = errors.New("gaffer: invalid job graph")
	// ErrUnfulfilledPromise: a job's input refers to the result of a job
	// that has not finished before it.
	ErrUnfulfilledPromise = errors.New("gaffer: promise not fulfilled")
	// ErrJobsFailed: the workflow ended with failed jobs. The error is a
	// *FailedJobsError.
	ErrJobsFailed = errors.New("gaffer: workflow has failed jobs")
	// ErrWorkflowMismatch: Run was given a root that differs from the one
	// the store already holds.
	ErrWorkflowMismatch = errors.New("gaffer: store holds a different workflow")
	// ErrBadRequirement: a requirement could not be parsed.
	ErrBadRequirement = errors.New("gaffer: bad requirement")
	// ErrDeadlock: the run ended in a service deadlock (*DeadlockError).
	ErrDeadlock = errors.New("gaffer: service deadlock")
	// ErrCancelled: the workflow was cancelled (*CancelledError).
	ErrCancelled = errors.New("gaffer: workflow cancelled")
	// ErrNotFinished: Result was asked of a workflow still running.
	ErrNotFinished = errors.New("gaffer: workflow not finished")
)

// CancelledError ends a workflow that was cancelled: as a whole, or
// because a job of it was cancelled with its subtree (its ancestors then
// end cancelled, once their other successors have finished). It matches
// ErrCancelled.
type CancelledError struct {
	Workflow bool     // the whole workflow was cancelled
	Jobs     []string // the jobs cancelled by request
}

func (e *CancelledError) Error() string {
	if e.Workflow || len(e.Jobs) == 0 {
		return "gaffer: workflow cancelled"
	}
	return "gaffer: workflow cancelled: jobs cancelled: " + strings.Join(e.Jobs, ", ")
}

func (e *CancelledError) Is(target error) bool { return target == ErrCancelled }

// FailedJob describes one job that failed totally.
type FailedJob struct {
	ID      jobstore.JobID
	Kind    string
	Name    string
	Tries   int    // attempts that failed
	Err     string // the last attempt's error
	LogTail string // the end of the last attempt's log
}

// FailedJobsError is returned by Leader.Run when jobs failed totally. It
// names every job that failed by its own error; jobs that did not run
// because of them are counted, not listed.
type FailedJobsError struct {
	Jobs    []FailedJob
	Skipped int // jobs never run because a predecessor failed
}

func (e *FailedJobsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "gaffer: %d job(s) failed", len(e.Jobs))
	if e.Skipped > 0 {
		fmt.Fprintf(&b, " and %d did not run because of them", e.Skipped)
	}
	for _, j := range e.Jobs {
		name := j.Name
		if name == "" {
			name = j.Kind
		}
		fmt.Fprintf(&b, "\n  - %s (%s, type %s) failed after %d attempt(s): %s", name, j.ID, j.Kind, j.Tries, j.Err)
		if t := strings.TrimSpace(j.LogTail); t != "" {
			for line := range strings.Lines(t) {
				b.WriteString("\n      | ")
				b.WriteString(strings.TrimRight(line, "\n"))
			}
		}
	}
	return b.String()
}

// Is makes errors.Is(err, ErrJobsFailed) true.
func (e *FailedJobsError) Is(target error) bool { return target == ErrJobsFailed }

// GraphError is an ErrInvalidGraph that names the jobs involved.
type GraphError struct {
	Problem string   // what is wrong
	Jobs    []string // the jobs involved, by display name
}

func (e *GraphError) Error() string {
	return fmt.Sprintf("gaffer: invalid job graph: %s: %s", e.Problem, strings.Join(e.Jobs, ", "))
}

// Is makes errors.Is(err, ErrInvalidGraph) true.
func (e *GraphError) Is(target error) bool { return target == ErrInvalidGraph }

// failure builds the error that names every failed job of the graph.
func (g *graph) failure() error {
	e := &FailedJobsError{Skipped: g.skipped}
	for _, id := range g.failedOwn {
		j := g.jobs.get(id)
		if j == nil {
			continue
		}
		x := j.extra()
		e.Jobs = append(e.Jobs, FailedJob{ID: j.id, Kind: j.kind, Name: x.name, Tries: int(j.tries), Err: x.lastError, LogTail: x.logTail})
	}
	slices.SortFunc(e.Jobs, func(a, b FailedJob) int { return int(a.ID) - int(b.ID) })
	return e
}
