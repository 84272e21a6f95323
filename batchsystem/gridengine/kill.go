package gridengine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
)

// Kill deletes the jobs with qdel and waits until they have left qstat,
// at most KillTimeout: Grid Engine lists a deleted running job ("dr")
// until its execution daemon has killed every process of it. Killed jobs
// are never reported.
func (b *BatchSystem) Kill(ctx context.Context, ids []batchsystem.ID) error {
	b.mu.Lock()
	if b.shut {
		b.mu.Unlock()
		return batchsystem.ErrShutdown
	}
	victims, numbers := b.markKilled(ids)
	b.mu.Unlock()
	return b.deleteAndWait(ctx, victims, numbers, nil)
}

// markKilled marks jobs killed and returns them, with the numbers qdel
// must delete now; b.mu must be held. A job that already finished is
// simply dropped. An adopted job whose name no poll has checked yet is
// not deleted here: its number may name someone else's job, and qdel
// cannot check a name. The poller deletes it once qstat shows our name.
func (b *BatchSystem) markKilled(ids []batchsystem.ID) (victims []*job, numbers []string) {
	for _, id := range ids {
		j, ok := b.jobs[id]
		if !ok || j.killed {
			continue
		}
		if j.finished != nil {
			b.forget(j)
			continue
		}
		j.killed = true
		j.stopped = make(chan struct{})
		victims = append(victims, j)
		if j.verified {
			j.deleted = true
			numbers = append(numbers, j.number)
		}
	}
	return victims, numbers
}

// deleteAndWait runs qdel for numbers and waits for the poller to see the
// victims, and the jobs in alsoWait (deleted earlier), leave qstat.
func (b *BatchSystem) deleteAndWait(ctx context.Context, victims []*job, numbers []string, alsoWait []*job) error {
	if len(victims)+len(alsoWait) == 0 {
		return nil
	}
	delErr := b.qdel(ctx, numbers)
	if delErr != nil {
		b.log.Debug("gridengine: qdel", "err", delErr)
	}
	b.poke()
	timer := time.NewTimer(b.opts.KillTimeout)
	defer timer.Stop()
	for _, j := range append(victims, alsoWait...) {
		select {
		case <-j.stopped:
		case <-ctx.Done():
			return fmt.Errorf("gridengine: waiting for deleted job %s (gaffer job %s) to stop: %w", j.number, j.jobID, ctx.Err())
		case <-timer.C:
			if delErr != nil {
				return fmt.Errorf("%w: Grid Engine job %s (gaffer job %s) (qdel: %w)", ErrKillTimeout, j.number, j.jobID, delErr)
			}
			return fmt.Errorf("%w: Grid Engine job %s (gaffer job %s) after %v", ErrKillTimeout, j.number, j.jobID, b.opts.KillTimeout)
		}
	}
	return nil
}

// qdel deletes jobs, retrying failures that mean the qmaster was briefly
// unreachable: a deletion that never reached it would leave the job
// running while Kill waits for it to stop. Jobs qdel says do not exist
// are gone already, which is what was wanted.
func (b *BatchSystem) qdel(ctx context.Context, numbers []string) error {
	var errs []error
	for _, chunk := range chunks(numbers, b.opts.MaxIDsPerQuery) {
		delay := b.retryDelay
		for attempt := 0; ; attempt++ {
			_, err := b.run(ctx, nil, "qdel", strings.Join(chunk, ","))
			if err == nil {
				break
			}
			if qdelDone(stderrOf(err)) {
				break
			}
			if !isTransient(err) || attempt >= b.opts.SubmitRetries {
				errs = append(errs, err)
				break
			}
			b.log.Warn("gridengine: qdel failed, retrying", "attempt", attempt+1, "err", err)
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return errors.Join(append(errs, ctx.Err())...)
			case <-t.C:
			}
			delay *= 2
		}
	}
	return errors.Join(errs...)
}

// deleteQuietly deletes a job no one tracks (submitted during Shutdown).
func (b *BatchSystem) deleteQuietly(number string) {
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.CommandTimeout)
	defer cancel()
	if err := b.qdel(ctx, []string{number}); err != nil {
		b.log.Warn("gridengine: deleting a job submitted during shutdown", "ge_job", number, "err", err)
	}
}

// Shutdown deletes every job still issued, waits until they left qstat
// (at most KillTimeout), and stops polling. Jobs that finished but were
// not yet returned by WaitFinished are dropped.
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
	victims, numbers := b.markKilled(ids)
	b.mu.Unlock()

	err := b.deleteAndWait(ctx, victims, numbers, pending)
	close(b.stopPoll)
	b.stopCancel()
	<-b.pollDone
	return err
}
