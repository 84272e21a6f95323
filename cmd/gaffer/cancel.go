package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/jobstore"
)

var cancelCmd = &command{
	name: "cancel", args: "STORE [JOB...]",
	summary: "cancel jobs with their subtrees, or the whole workflow",
	help: `
With no JOB, cancels the whole workflow. A running leader kills its jobs,
records the workflow as cancelled, and its run ends with an error
matching gaffer.ErrCancelled. With no leader, gaffer records the cancel
in the store itself: the workflow is cancelled at once, and a later run
returns ErrCancelled instead of resuming it.

With JOBs (j12, as status prints it, or 12), cancels each with its whole
subtree: its issued jobs are killed and all of it is recorded as
cancelled; its ancestors end cancelled once their other successors have
finished. A running leader acts at its next look at the work directory
(every gaffer.Config.ControlInterval, a second by default); with no
leader, the request waits in the work directory for the next leader,
which takes it before it issues anything.

A path that is not a gaffer store is refused.`,
	setup: func(fs *flag.FlagSet) func(context.Context, *cli, []string) int {
		wait := fs.Duration("wait", 10*time.Second, "while a leader runs: how long to wait for it to take the request (0: do not wait)")
		return func(ctx context.Context, c *cli, args []string) int {
			if len(args) == 0 {
				return c.errorf("want STORE [JOB...]")
			}
			ids, err := parseJobs(args[1:])
			if err != nil {
				return c.errorf("%s: %v", args[0], err)
			}
			t, err := open(ctx, args[0], c.workDir)
			if err != nil {
				return c.fail(err)
			}
			defer t.close()
			for _, id := range ids {
				if err := t.checkJob(id); err != nil {
					return c.fail(err)
				}
			}
			if t.held {
				return t.cancelLive(ctx, c, ids, *wait)
			}
			if len(ids) > 0 {
				return t.cancelStoredJobs(ctx, c, ids)
			}
			return t.cancelStoredWorkflow(ctx, c)
		}
	},
}

// cancelLive asks the running leader through request files, and waits
// for it to take them (it removes them once what they ask is committed).
func (t *target) cancelLive(ctx context.Context, c *cli, ids []jobstore.JobID, wait time.Duration) int {
	if t.unmarked {
		return c.errorf("%s: a process holds the store, and %s has no marker yet: if a leader is starting, try again in a second; if its work directory is elsewhere, give it with -workdir", t.path, t.workDir)
	}
	if s := t.snap; s != nil && s.Status != jobstore.StatusRunning.String() {
		fmt.Fprintf(c.stdout, "the workflow has already %s: nothing to cancel\n", ended(s.Status))
		return exitOK
	}
	dir := filepath.Join(t.workDir, "control")
	var files []string
	var err error
	if len(ids) == 0 {
		err = gaffer.RequestCancelWorkflow(t.workDir)
		files = append(files, filepath.Join(dir, "cancel-workflow"))
	} else {
		err = gaffer.RequestCancel(t.workDir, ids...)
		for _, id := range ids {
			files = append(files, filepath.Join(dir, "cancel-"+strconv.FormatUint(uint64(id), 10)))
		}
	}
	if err != nil {
		return c.errorf("%s: %v", t.path, err)
	}
	what := "the workflow"
	if len(ids) > 0 {
		what = jobList(ids) + " (with " + plural(len(ids), "its", "their") + " subtree)"
	}
	deadline := time.Now().Add(wait)
	for {
		left := 0
		for _, f := range files {
			if _, err := os.Stat(f); err == nil {
				left++
			}
		}
		if left == 0 {
			fmt.Fprintf(c.stdout, "cancelled %s: the leader took the request\n", what)
			return exitOK
		}
		if !time.Now().Before(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Fprintf(c.stdout, "requested the cancel of %s; the leader has not taken the request yet (it looks every second, between steps)\n", what)
	return exitOK
}

func jobList(ids []jobstore.JobID) string {
	s := ""
	for i, id := range ids {
		if i > 0 {
			s += ", "
		}
		s += id.String()
	}
	return s
}

func ended(status string) string {
	if status == jobstore.StatusRunning.String() {
		return "stopped"
	}
	return status
}

// cancelStoredJobs leaves requests for the next leader, for the jobs
// that have not finished.
func (t *target) cancelStoredJobs(ctx context.Context, c *cli, ids []jobstore.JobID) int {
	switch t.meta.Status {
	case jobstore.StatusSucceeded, jobstore.StatusCancelled:
		fmt.Fprintf(c.stdout, "the workflow has %s: nothing to cancel\n", t.meta.Status)
		return exitOK
	case jobstore.StatusNew, jobstore.StatusRunning, jobstore.StatusFailed:
	}
	var todo []jobstore.JobID
	err := t.db.View(ctx, func(tx jobstore.ReadTx) error {
		for _, id := range ids {
			j, err := tx.Job(id)
			switch {
			case errors.Is(err, jobstore.ErrNotFound):
				fmt.Fprintf(c.stdout, "%s has finished: nothing to cancel\n", id)
			case err != nil:
				return err
			case j.State == jobstore.StateFailed, j.State == jobstore.StateSkipped, j.State == jobstore.StateCancelled, j.State == jobstore.StateDone:
				fmt.Fprintf(c.stdout, "%s is %s: nothing to cancel\n", j.DisplayName(), j.State)
			default:
				todo = append(todo, id)
			}
		}
		return nil
	})
	if err != nil {
		return c.errorf("%s: %v", t.path, err)
	}
	if len(todo) == 0 {
		return exitOK
	}
	if err := gaffer.RequestCancel(t.workDir, todo...); err != nil {
		return c.errorf("%s: %v", t.path, err)
	}
	fmt.Fprintf(c.stdout, "requested the cancel of %s: no leader runs; the next leader to run the workflow cancels %s with %s subtree before it issues anything\n",
		jobList(todo), plural(len(todo), "it", "them"), plural(len(todo), "its", "their"))
	return exitOK
}

// cancelStoredWorkflow records the cancel in the store, which no leader
// holds.
func (t *target) cancelStoredWorkflow(ctx context.Context, c *cli) int {
	switch t.meta.Status {
	case jobstore.StatusCancelled:
		fmt.Fprintln(c.stdout, "the workflow is already cancelled")
		return exitOK
	case jobstore.StatusSucceeded:
		return c.errorf("%s: the workflow has succeeded: nothing to cancel", t.path)
	case jobstore.StatusNew, jobstore.StatusRunning, jobstore.StatusFailed:
	}
	// Jobs of a batch system whose jobs outlive their leader may still run.
	var backing []string
	err := t.db.View(ctx, func(tx jobstore.ReadTx) error {
		for j, err := range tx.Jobs(jobstore.StatePending) {
			if err != nil {
				return err
			}
			if j.Backing != "" {
				backing = append(backing, j.DisplayName())
			}
		}
		return nil
	})
	if err != nil {
		return c.errorf("%s: %v", t.path, err)
	}
	wf := t.meta.WorkflowID
	t.close() // the read lock would keep the writer out
	db, err := jobstore.OpenBolt(t.store, &jobstore.BoltOptions{LockTimeout: -1})
	if errors.Is(err, jobstore.ErrLocked) {
		// A leader started meanwhile: ask it.
		if err := gaffer.RequestCancelWorkflow(t.workDir); err != nil {
			return c.errorf("%s: %v", t.path, err)
		}
		fmt.Fprintln(c.stdout, "requested the cancel of the workflow: a leader has just started; it takes the request at its first step")
		return exitOK
	}
	if err != nil {
		return c.fail(notStore(t.path, err))
	}
	defer db.Close()
	err = db.Update(ctx, func(tx jobstore.Tx) error {
		m, err := tx.Meta()
		if err != nil {
			return err
		}
		if m.WorkflowID != wf || m.Status == jobstore.StatusSucceeded {
			return fmt.Errorf("the workflow changed while gaffer looked at it (now %s, %s); nothing was changed", m.WorkflowID, m.Status)
		}
		m.Status, m.Cancel = jobstore.StatusCancelled, true
		return tx.SetMeta(m)
	})
	if err != nil {
		return c.errorf("%s: %v", t.path, err)
	}
	fmt.Fprintln(c.stdout, "cancelled the workflow: no leader runs; the store records it as cancelled (a later run returns gaffer.ErrCancelled)")
	if len(backing) > 0 {
		fmt.Fprintf(c.stdout, "note: %d %s running in a batch system whose jobs outlive their leader (for example Slurm) when the last leader stopped, and may still run there: cancel %s there (first: %s)\n",
			len(backing), plural(len(backing), "job was", "jobs were"), plural(len(backing), "it", "them"), backing[0])
	}
	return exitOK
}
