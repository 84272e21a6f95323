package slurm

import (
	"context"
	"errors"
	"fmt"

	"github.com/gafferhq/gaffer/batchsystem"
)

// ErrUnknownJob is returned by Describe for an ID this BatchSystem does not
// track, or a job the controller no longer holds.
var ErrUnknownJob = errors.New("slurm: unknown job")

// Describe returns the controller's full record of an issued job, as
// `scontrol show job` prints it (JobState, Reason, NodeList, StdOut,
// TimeLimit...), for tools that explain a job to a human. It runs one
// scontrol command per call, outside the poller's rate limit: do not call
// it in a loop over all jobs.
func (b *BatchSystem) Describe(ctx context.Context, id batchsystem.ID) (map[string]string, error) {
	b.mu.Lock()
	if b.shut {
		b.mu.Unlock()
		return nil, batchsystem.ErrShutdown
	}
	j, ok := b.jobs[id]
	var slurmID string
	if ok {
		slurmID = j.slurmID
	}
	b.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: %d", ErrUnknownJob, id)
	}
	out, err := b.run(ctx, "scontrol", "show", "job", "--oneliner", slurmID)
	if err != nil {
		if isInvalidJobID(err) {
			return nil, fmt.Errorf("%w: Slurm job %s is no longer held by the controller", ErrUnknownJob, slurmID)
		}
		return nil, err
	}
	for _, rec := range parseScontrol(string(out)) {
		if rec["JobId"] == slurmID {
			return rec, nil
		}
	}
	return nil, fmt.Errorf("%w: scontrol did not list Slurm job %s", ErrUnknownJob, slurmID)
}
