package slurm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/batchsystem/pilot"
)

// Kill cancels the jobs with scancel and waits until Slurm shows them
// stopped, at most KillTimeout. Killed jobs are never reported.
func (b *BatchSystem) Kill(ctx context.Context, ids []batchsystem.ID) error {
	b.mu.Lock()
	if b.shut {
		b.mu.Unlock()
		return batchsystem.ErrShutdown
	}
	members := b.killMembers(ids)
	victims := b.markKilled(ids)
	b.mu.Unlock()
	return errors.Join(b.stopMembers(ctx, members), b.cancelAndWait(ctx, victims, nil))
}

// markKilled marks jobs killed and returns those Slurm must stop; b.mu
// must be held. A job that already finished is simply dropped.
func (b *BatchSystem) markKilled(ids []batchsystem.ID) []*job {
	var victims []*job
	for _, id := range ids {
		j, ok := b.jobs[id]
		if !ok || j.killed || (j.pilot != "" && !b.shut) {
			continue
		}
		if j.finished != nil {
			b.forget(j)
			continue
		}
		j.killed = true
		j.stopped = make(chan struct{})
		victims = append(victims, j)
	}
	return victims
}

// cancelAndWait runs scancel for victims and waits for the poller to see
// them, and the jobs in alsoWait (cancelled earlier), stop.
func (b *BatchSystem) cancelAndWait(ctx context.Context, victims, alsoWait []*job) error {
	if len(victims)+len(alsoWait) == 0 {
		return nil
	}
	var slurmIDs []string
	var cancelErr error
	for _, j := range victims {
		if !j.adopted {
			slurmIDs = append(slurmIDs, j.slurmID)
			continue
		}
		// An adopted ID may, after a reset of the cluster's job IDs, name
		// someone else's job: --name makes scancel touch it only if it
		// carries the name we gave it.
		if err := b.scancel(ctx, "--name="+j.name, j.slurmID); err != nil {
			b.log.Debug("slurm: scancel", "err", err)
			cancelErr = err
		}
	}
	for _, chunk := range chunks(slurmIDs, b.opts.MaxIDsPerQuery) {
		if err := b.scancel(ctx, chunk...); err != nil {
			// scancel fails for jobs that already ended, which is fine; the
			// poll below tells whether they stopped.
			b.log.Debug("slurm: scancel", "err", err)
			cancelErr = err
		}
	}
	select {
	case b.wake <- struct{}{}:
	default:
	}
	timer := time.NewTimer(b.opts.KillTimeout)
	defer timer.Stop()
	for _, j := range append(victims, alsoWait...) {
		select {
		case <-j.stopped:
		case <-ctx.Done():
			return fmt.Errorf("slurm: waiting for cancelled jobs to stop: %w", ctx.Err())
		case <-timer.C:
			if cancelErr != nil {
				return fmt.Errorf("%w: Slurm job %s (scancel: %w)", ErrKillTimeout, j.slurmID, cancelErr)
			}
			return fmt.Errorf("%w: Slurm job %s after %v", ErrKillTimeout, j.slurmID, b.opts.KillTimeout)
		}
	}
	return nil
}

// scancel runs scancel, retrying failures that mean the controller was
// briefly unreachable: a cancel that never reached Slurm would leave the
// job running while Kill waits for it to stop.
func (b *BatchSystem) scancel(ctx context.Context, args ...string) error {
	delay := b.retryDelay
	for attempt := 0; ; attempt++ {
		_, err := b.run(ctx, "scancel", args...)
		if err == nil || !isTransient(err) || attempt >= b.opts.SubmitRetries {
			return err
		}
		b.log.Warn("slurm: scancel failed, retrying", "attempt", attempt+1, "err", err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay *= 2
	}
}

// cancelQuietly cancels a job no one tracks (submitted during Shutdown).
func (b *BatchSystem) cancelQuietly(slurmID string) {
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.CommandTimeout)
	defer cancel()
	if _, err := b.opts.Runner.Run(ctx, "scancel", slurmID); err != nil {
		b.log.Warn("slurm: cancelling job submitted during shutdown", "slurm_id", slurmID, "err", err)
	}
}

// Shutdown cancels every job still issued, waits until Slurm shows them
// stopped (at most KillTimeout), and stops polling. Jobs that finished but
// were not yet returned by WaitFinished are dropped.
func (b *BatchSystem) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	if b.shut {
		b.mu.Unlock()
		return batchsystem.ErrShutdown
	}
	b.shut = true
	ids := make([]batchsystem.ID, 0, len(b.jobs))
	var pending []*job
	for id, j := range b.jobs {
		if j.killed {
			pending = append(pending, j) // a Kill still waits for it
		} else {
			ids = append(ids, id)
		}
	}
	victims := b.markKilled(ids)
	// Grouped jobs die with their pilots, cancelled above; queued ones
	// are taken back so that no other pilot starts them.
	var queued []*member
	for _, m := range b.members {
		if !m.killed && m.finished == nil && !m.started {
			queued = append(queued, m)
		}
		m.killed = true
	}
	clear(b.members)
	clear(b.byTicket)
	b.mu.Unlock()
	for _, m := range queued {
		_, _ = (pilot.Queue{Root: m.root}).Withdraw(m.owner, m.shape, m.ticket)
	}

	err := b.cancelAndWait(ctx, victims, pending)
	close(b.stopPoll)
	b.stopCancel()
	<-b.pollDone
	<-b.groupDone
	return err
}
