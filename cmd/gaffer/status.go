package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gafferhq/gaffer/jobstore"
)

var statusCmd = &command{
	name: "status", args: "STORE",
	summary: "the workflow's state, its jobs by state and by type, the failed jobs",
	help: `
Prints the workflow's state as one word on the first line:

  running     a leader runs it
  succeeded   it ended well
  failed      jobs failed totally (a later run restarts what failed)
  cancelled   a user cancelled it
  stopped     no leader runs it and it has not finished (run its program
              again to resume it)
  new         the store holds no workflow yet

then the store, the work directory, the leader, the jobs by state and by
type, and the jobs that failed by their own error with their last error.
While a leader runs, this comes from its live snapshot (counts of the
leader: live, ready, issued, in backoff, failed, skipped, services);
otherwise from the store's records (counts by stored state).

Exits 1 when the workflow failed, 0 otherwise (2 on an error).`,
	setup: func(fs *flag.FlagSet) func(context.Context, *cli, []string) int {
		asJSON := fs.Bool("json", false, "print one JSON object instead")
		limit := fs.Int("failed", 20, "failed jobs to list at most (0: all the source has)")
		return func(ctx context.Context, c *cli, args []string) int {
			if len(args) != 1 {
				return c.errorf("want one STORE, got %d arguments", len(args))
			}
			t, err := open(ctx, args[0], c.workDir)
			if err != nil {
				return c.fail(err)
			}
			defer t.close()
			r, err := t.status(ctx, *limit)
			if err != nil {
				return c.fail(err)
			}
			if *asJSON {
				enc := json.NewEncoder(c.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(r); err != nil {
					return c.fail(err)
				}
			} else {
				r.print(c.stdout)
			}
			if r.Status == jobstore.StatusFailed.String() {
				return exitFailed
			}
			return exitOK
		}
	},
}

// statusReport is what status prints, and its JSON form.
type statusReport struct {
	Status     string      `json:"status"`
	Store      string      `json:"store"`
	WorkDir    string      `json:"work_dir"`
	WorkflowID string      `json:"workflow_id,omitempty"`
	Source     string      `json:"source"` // "leader" (its live snapshot), "store", or "lock" (a process holds the store; nothing more is known)
	Leader     *leaderInfo `json:"leader,omitempty"`
	LeaderText string      `json:"-"`
	// Jobs counts the live jobs (from a leader) or the stored records.
	Jobs        int            `json:"jobs"`
	States      map[string]int `json:"states"`
	Kinds       map[string]int `json:"kinds"`
	Failed      []failedJob    `json:"failed"`
	FailedTotal int            `json:"failed_total"`
}

type leaderInfo struct {
	PID        int       `json:"pid"`
	Host       string    `json:"host,omitempty"`
	Running    bool      `json:"running"` // the leader's run goes on
	Started    time.Time `json:"started"`
	Written    time.Time `json:"written"` // of the snapshot
	AgeSeconds float64   `json:"age_seconds"`
	Epoch      uint64    `json:"epoch"`
}

type failedJob struct {
	Job   string         `json:"job"` // j12
	ID    jobstore.JobID `json:"id"`
	Kind  string         `json:"kind"`
	Name  string         `json:"name,omitempty"`
	Error string         `json:"error"`
}

// status gathers the report, from the leader's snapshot or the store.
func (t *target) status(ctx context.Context, limit int) (*statusReport, error) {
	r := &statusReport{Store: t.store, WorkDir: t.workDir, LeaderText: t.leaderLine(),
		States: map[string]int{}, Kinds: map[string]int{}, Failed: []failedJob{}}
	if s := t.snap; s != nil {
		r.Leader = &leaderInfo{PID: s.PID, Host: s.Host, Running: t.live(), Started: s.Started, Written: s.Written,
			AgeSeconds: age(s.Written).Seconds(), Epoch: s.Epoch}
	}
	switch {
	case t.held && t.snap == nil:
		r.Status, r.Source = jobstore.StatusRunning.String(), "lock"
		return r, nil
	case t.held:
		s := t.snap
		r.Source, r.Status, r.WorkflowID = "leader", s.Status, s.WorkflowID
		if s.Final && s.Status == jobstore.StatusRunning.String() {
			r.Status = "stopped"
		}
		r.Jobs = s.Counts.Live
		c := s.Counts
		r.States = map[string]int{"ready": c.Ready, "issued": c.Issued, "backoff": c.Backoff,
			"failed": c.Failed, "skipped": c.Skipped, "services": c.Services}
		r.Kinds = s.Kinds
		r.FailedTotal = s.FailedTotal
		for _, j := range s.Failed {
			if limit > 0 && len(r.Failed) == limit {
				break
			}
			r.Failed = append(r.Failed, failedJob{Job: j.ID.String(), ID: j.ID, Kind: j.Kind, Name: j.Name, Error: j.Why})
		}
		return r, nil
	}
	r.Source, r.WorkflowID = "store", t.meta.WorkflowID
	r.Status = t.meta.Status.String()
	if t.meta.Status == jobstore.StatusRunning {
		r.Status = "stopped"
	}
	err := t.db.View(ctx, func(tx jobstore.ReadTx) error {
		for j, err := range tx.Jobs() {
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			r.Jobs++
			r.States[j.State.String()]++
			r.Kinds[j.Kind]++
			if j.State == jobstore.StateFailed && j.LastError != "" {
				r.FailedTotal++
				if limit <= 0 || len(r.Failed) < limit {
					r.Failed = append(r.Failed, failedJob{Job: j.ID.String(), ID: j.ID, Kind: j.Kind, Name: j.Name, Error: j.LastError})
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.path, err)
	}
	return r, nil
}

func (r *statusReport) print(w io.Writer) {
	fmt.Fprintln(w, r.Status)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "store\t%s\n", r.Store)
	fmt.Fprintf(tw, "work dir\t%s\n", r.WorkDir)
	if r.WorkflowID != "" {
		fmt.Fprintf(tw, "workflow\t%s\n", r.WorkflowID)
	}
	fmt.Fprintf(tw, "leader\t%s\n", r.LeaderText)
	switch r.Source {
	case "lock":
		tw.Flush()
		return
	case "leader":
		fmt.Fprintf(tw, "jobs\t%d live: %d ready, %d issued, %d in backoff, %d failed, %d skipped, %d services\n",
			r.Jobs, r.States["ready"], r.States["issued"], r.States["backoff"], r.States["failed"], r.States["skipped"], r.States["services"])
	default:
		var parts []string
		for _, s := range storedStates {
			if n := r.States[s]; n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, s))
			}
		}
		fmt.Fprintf(tw, "jobs\t%d %s", r.Jobs, plural(r.Jobs, "record", "records"))
		if len(parts) > 0 {
			fmt.Fprintf(tw, ": %s", strings.Join(parts, ", "))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	if len(r.Kinds) > 0 {
		fmt.Fprintln(w, "by type:")
		tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		for _, k := range slices.Sorted(maps.Keys(r.Kinds)) {
			fmt.Fprintf(tw, "  %s\t%d\n", k, r.Kinds[k])
		}
		tw.Flush()
	}
	if r.FailedTotal > 0 {
		fmt.Fprintf(w, "failed: %d %s failed by %s own error", r.FailedTotal, plural(r.FailedTotal, "job", "jobs"), plural(r.FailedTotal, "its", "their"))
		if len(r.Failed) < r.FailedTotal {
			fmt.Fprintf(w, " (the first %d)", len(r.Failed))
		}
		fmt.Fprintln(w, ":")
		for _, f := range r.Failed {
			name := jobstore.DisplayName(f.Name, f.Kind, f.Job)
			fmt.Fprintf(w, "  %s: %s\n", name, indent(f.Error, "    "))
		}
	}
}

// storedStates are the stored states in the order status lists them.
var storedStates = []string{
	jobstore.StatePending.String(), jobstore.StateServices.String(), jobstore.StateChildren.String(),
	jobstore.StateFollowOns.String(), jobstore.StateDone.String(), jobstore.StateFailed.String(),
	jobstore.StateSkipped.String(), jobstore.StateCancelled.String(),
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// indent puts prefix before every line of s but the first.
func indent(s, prefix string) string {
	return strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}
