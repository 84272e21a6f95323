package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/gafferhq/gaffer/jobstore"
)

var logsCmd = &command{
	name: "logs", args: "STORE JOB",
	summary: "the kept logs of a job's attempts",
	help: `
Prints the kept log of every attempt of JOB (j12, as status prints it, or
12), whole, each after a line that says which attempt it is and how it
ended. Logs are kept for failed attempts (and for successful ones with
gaffer.Config.KeepSuccessLogs), up to gaffer.Config.LogLimit bytes each,
under the work directory's logs/ folder.

With no leader the attempts come from the store's records; while a leader
runs, from the logs/ folder (the store is locked).`,
	setup: func(fs *flag.FlagSet) func(context.Context, *cli, []string) int {
		return func(ctx context.Context, c *cli, args []string) int {
			if len(args) != 2 {
				return c.errorf("want STORE JOB, got %d arguments", len(args))
			}
			id, err := parseJob(args[1])
			if err != nil {
				return c.errorf("%s: %v", args[0], err)
			}
			t, err := open(ctx, args[0], c.workDir)
			if err != nil {
				return c.fail(err)
			}
			defer t.close()
			if err := t.checkJob(id); err != nil {
				return c.fail(err)
			}
			if t.held {
				return t.logsFromFolder(c, id)
			}
			return t.logsFromStore(ctx, c, id)
		}
	},
}

// copyLog prints the file at path, or says why it cannot.
func copyLog(c *cli, t *target, id jobstore.JobID, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %s: its kept log: %w", t.path, id, err)
	}
	defer f.Close()
	var last [1]byte
	n, err := io.Copy(c.stdout, f)
	if err != nil {
		return fmt.Errorf("%s: %s: reading its kept log: %w", t.path, id, err)
	}
	if n > 0 {
		if _, err := f.ReadAt(last[:], n-1); err == nil && last[0] != '\n' {
			fmt.Fprintln(c.stdout)
		}
	}
	return nil
}

func (t *target) logsFromStore(ctx context.Context, c *cli, id jobstore.JobID) int {
	var as []*jobstore.Attempt
	var rec *jobstore.Job
	err := t.db.View(ctx, func(tx jobstore.ReadTx) error {
		for a, err := range tx.Attempts(id) {
			if err != nil {
				return err
			}
			as = append(as, a)
		}
		j, err := tx.Job(id)
		if err == nil {
			rec = j
		} else if !errors.Is(err, jobstore.ErrNotFound) {
			return err
		}
		return nil
	})
	if err != nil {
		return c.errorf("%s: %s: %v", t.path, id, err)
	}
	if len(as) == 0 {
		what := "it has not run"
		if rec == nil {
			what = "its attempts were not recorded"
		}
		name := id.String()
		if rec != nil {
			name = rec.DisplayName()
		}
		fmt.Fprintf(c.stdout, "%s: no attempt is recorded (%s)\n", name, what)
		return exitOK
	}
	code := exitOK
	for _, a := range as {
		name := jobstore.DisplayName(a.Name, a.Kind, a.Job.String())
		how := "succeeded"
		if !a.OK {
			how = "failed"
			if a.Reason != "" && a.Reason != "failed" && a.Reason != "finished" {
				how += " (" + a.Reason + ")"
			}
			if a.Error != "" {
				how += ": " + firstLine(a.Error)
			}
		}
		fmt.Fprintf(c.stdout, "=== %s, attempt %d (issue %d.%d): %s ===\n", name, a.N, a.Epoch, a.Seq, how)
		if a.Log == "" {
			fmt.Fprintln(c.stdout, "(no log kept)")
			continue
		}
		if err := copyLog(c, t, id, a.Log); err != nil {
			code = c.fail(err)
		}
	}
	return code
}

// logsFromFolder prints the logs kept in <work dir>/logs/<job>/, named
// <epoch>.<seq>.log, in the order they were issued.
func (t *target) logsFromFolder(c *cli, id jobstore.JobID) int {
	dir := filepath.Join(t.workDir, "logs", strconv.FormatUint(uint64(id), 10))
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(c.stdout, "%s: no log is kept (a leader runs; no attempt of the job has left one in %s)\n", id, dir)
		return exitOK
	}
	if err != nil {
		return c.errorf("%s: %s: %v", t.path, id, err)
	}
	type kept struct {
		epoch, seq uint64
		name       string
	}
	var logs []kept
	for _, e := range entries {
		issue, ok := strings.CutSuffix(e.Name(), ".log")
		es, ss, dot := strings.Cut(issue, ".")
		ep, err1 := strconv.ParseUint(es, 10, 64)
		sq, err2 := strconv.ParseUint(ss, 10, 64)
		if ok && dot && err1 == nil && err2 == nil {
			logs = append(logs, kept{ep, sq, e.Name()})
		}
	}
	slices.SortFunc(logs, func(a, b kept) int { return cmp.Or(cmp.Compare(a.epoch, b.epoch), cmp.Compare(a.seq, b.seq)) })
	code := exitOK
	for _, k := range logs {
		fmt.Fprintf(c.stdout, "=== %s, issue %d.%d (a leader runs: the store's record of the attempt cannot be read) ===\n", id, k.epoch, k.seq)
		if err := copyLog(c, t, id, filepath.Join(dir, k.name)); err != nil {
			code = c.fail(err)
		}
	}
	if len(logs) == 0 {
		fmt.Fprintf(c.stdout, "%s: no log is kept in %s\n", id, dir)
	}
	return code
}

func firstLine(s string) string {
	line, _, more := strings.Cut(s, "\n")
	if more {
		return line + " …"
	}
	return line
}
