package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/jobstore"
)

var whyCmd = &command{
	name: "why", args: "STORE [JOB...]",
	summary: "why jobs are not running",
	help: `
Says, for each JOB (j12 or 12), where it stands and why it is not running:
waiting for which predecessors, ready but held back by a limit, in retry
backoff until when, queued in the batch system for want of what, failed
with which error, skipped because of which failed job. With no JOB, it
explains up to -n jobs that are not running.

While a leader runs, the answers come from its live snapshot, which
explains up to 50 waiting jobs; for other jobs gaffer asks the leader
(a request file in the work directory) and waits up to -wait for its
next snapshot. With no leader, the store is read as a leader resuming
the workflow would read it (which takes a leader's start-up time and
memory on a big workflow).`,
	setup: func(fs *flag.FlagSet) func(context.Context, *cli, []string) int {
		n := fs.Int("n", 50, "jobs to explain at most when no JOB is given (0: all); a running leader's snapshot holds 50")
		wait := fs.Duration("wait", 5*time.Second, "while a leader runs: how long to wait for its answer about jobs its snapshot does not explain")
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
			switch {
			case t.held && t.snap == nil:
				return c.errorf("%s: a process holds the store and has not published a live snapshot yet (a leader loading the workflow?); try again in a second", t.path)
			case t.held:
				return t.whyLive(ctx, c, ids, *wait)
			}
			return t.whyStored(ctx, c, ids, *n)
		}
	},
}

func printJobs(c *cli, prefix string, jobs []gaffer.LiveJob) {
	for _, j := range jobs {
		fmt.Fprintf(c.stdout, "%s%s: %s\n", prefix, j.Display(), indent(j.Why, prefix+"  "))
	}
}

func (t *target) whyLive(ctx context.Context, c *cli, ids []jobstore.JobID, wait time.Duration) int {
	s := t.snap
	if len(ids) == 0 {
		switch {
		case len(s.Waiting) == 0:
			fmt.Fprintf(c.stdout, "%s: no job waits: the %d live jobs are running (leader pid %d, snapshot %s old)\n",
				s.Status, s.Counts.Live, s.PID, age(s.Written))
		default:
			fmt.Fprintf(c.stdout, "%s: %d live jobs; %d of those not running (leader pid %d, snapshot %s old):\n",
				s.Status, s.Counts.Live, len(s.Waiting), s.PID, age(s.Written))
			printJobs(c, "  ", s.Waiting)
		}
		return exitOK
	}
	answers := func(s *gaffer.LiveStatus) map[jobstore.JobID]gaffer.LiveJob {
		m := map[jobstore.JobID]gaffer.LiveJob{}
		for _, j := range s.Failed {
			j.Why = "failed: " + j.Why
			m[j.ID] = j
		}
		for _, list := range [][]gaffer.LiveJob{s.Waiting, s.Asked} {
			for _, j := range list {
				m[j.ID] = j
			}
		}
		return m
	}
	got := answers(s)
	var missing []jobstore.JobID
	for _, id := range ids {
		if _, ok := got[id]; !ok {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 && t.live() {
		withdraw, err := gaffer.RequestWhy(t.workDir, missing...)
		if err != nil {
			return c.fail(err)
		}
		defer withdraw()
		deadline := time.Now().Add(wait)
		for {
			if ns, err := gaffer.ReadLiveStatus(t.workDir); err == nil && ns.PID == s.PID {
				s = ns
				for id, j := range answers(ns) {
					if _, ok := got[id]; !ok {
						got[id] = j
					}
				}
			}
			n := 0
			for _, id := range missing {
				if _, ok := got[id]; ok {
					n++
				}
			}
			if n == len(missing) || !time.Now().Before(deadline) || ctx.Err() != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	code := exitOK
	for _, id := range ids {
		j, ok := got[id]
		switch {
		case ok:
			printJobs(c, "", []gaffer.LiveJob{j})
		case !t.live():
			code = c.errorf("%s: %s: the leader's run has ended and its last snapshot does not explain the job", t.path, id)
		default:
			code = c.errorf("%s: %s: the leader did not answer within %v (its last snapshot is %s old: it is busy)", t.path, id, wait, age(s.Written))
		}
	}
	return code
}

func (t *target) whyStored(ctx context.Context, c *cli, ids []jobstore.JobID, n int) int {
	jobs, total, err := gaffer.WhyStored(ctx, t.db, ids, n)
	if err != nil {
		return c.errorf("%s: %v", t.path, err)
	}
	if len(ids) > 0 {
		printJobs(c, "", jobs)
		return exitOK
	}
	word := t.meta.Status.String()
	if t.meta.Status == jobstore.StatusRunning {
		word = "stopped"
	}
	first := ""
	if len(jobs) < total {
		first = fmt.Sprintf(" (the first %d)", len(jobs))
	}
	switch {
	case total == 0:
		fmt.Fprintf(c.stdout, "%s: no job is waiting (no leader runs)\n", word)
	case t.meta.Status == jobstore.StatusRunning:
		fmt.Fprintf(c.stdout, "%s: no leader runs; %d %s not finished%s, as a leader resuming the workflow would see %s:\n",
			word, total, plural(total, "job has", "jobs have"), first, plural(len(jobs), "it", "them"))
	default:
		fmt.Fprintf(c.stdout, "%s: no leader runs; %d %s left%s:\n", word, total, plural(total, "job is", "jobs are"), first)
	}
	printJobs(c, "  ", jobs)
	return exitOK
}
