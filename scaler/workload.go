package scaler

import (
	"context"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
)

// Workload is what the scaler needs to know about the workflow: the jobs it
// must find room for and the jobs that finished. The leader implements it;
// so does the simulated cluster, for runs without a leader.
type Workload interface {
	// Issued lists the jobs issued to the batch system and not yet
	// finished, queued or running. Jobs waiting on predecessors or in
	// retry backoff are not issued and not listed.
	Issued(ctx context.Context) ([]Job, error)
	// Completed returns the jobs that finished since the previous call;
	// each finished job is returned once.
	Completed(ctx context.Context) ([]CompletedJob, error)
}

// Job is an issued job as the scaler sees it.
type Job struct {
	Kind         string // job type; runtimes are learnt per kind
	Requirements batchsystem.Requirements
	// Service marks a job that runs until told to stop. Its runtime is
	// taken as 24 target times plus an hour, so that services are never
	// packed one after another on the same node, as in Toil.
	Service bool
}

// CompletedJob is a job that finished and how long it ran.
type CompletedJob struct {
	Kind         string
	Requirements batchsystem.Requirements
	WallTime     time.Duration
}
