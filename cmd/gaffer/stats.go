package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/gafferhq/gaffer"
)

var statsCmd = &command{
	name: "stats", args: "STORE",
	summary: "per job type: jobs, succeeded, failed, retries, wall and CPU time, peak memory",
	help: `
Sums up the recorded attempts by job type: the jobs that ran, attempts
that succeeded and failed (killed and lost ones count as failed), retries
(attempts after a job's first), wall-clock and CPU time of an attempt
(least, median, greatest, over the attempts for which it is known) and
the peak resident memory of any attempt. "-" means not known (CPU time
and memory of jobs run in the leader's process are not measured).

With no leader, the figures come from the store and cover every leader's
attempts. While a leader runs, they come from its live snapshot and cover
the attempts that ended under that leader; medians there are within 1%.`,
	setup: func(fs *flag.FlagSet) func(context.Context, *cli, []string) int {
		asJSON := fs.Bool("json", false, "print one JSON object instead")
		return func(ctx context.Context, c *cli, args []string) int {
			if len(args) != 1 {
				return c.errorf("want one STORE, got %d arguments", len(args))
			}
			t, err := open(ctx, args[0], c.workDir)
			if err != nil {
				return c.fail(err)
			}
			defer t.close()
			r := statsReport{Store: t.store}
			switch {
			case t.held && t.snap == nil:
				return c.errorf("%s: a process holds the store and has not published a live snapshot yet (a leader loading the workflow?); try again in a second", t.path)
			case t.held:
				r.Source, r.Since, r.PID, r.Stats = "leader", t.snap.Started, t.snap.PID, t.snap.Stats
			default:
				r.Source = "store"
				if r.Stats, err = gaffer.StoredStats(ctx, t.db); err != nil {
					return c.errorf("%s: %v", t.path, err)
				}
			}
			if r.Stats == nil {
				r.Stats = []gaffer.KindStats{}
			}
			if *asJSON {
				enc := json.NewEncoder(c.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(r); err != nil {
					return c.fail(err)
				}
				return exitOK
			}
			r.print(c.stdout)
			return exitOK
		}
	},
}

type statsReport struct {
	Store  string `json:"store"`
	Source string `json:"source"` // "store" (every leader's attempts) or "leader" (the running leader's)
	// For a running leader: its pid, and when its run started.
	PID   int                `json:"pid,omitempty"`
	Since time.Time          `json:"since,omitzero"`
	Stats []gaffer.KindStats `json:"stats"`
}

func (r *statsReport) print(w io.Writer) {
	if r.Source == "leader" {
		fmt.Fprintf(w, "attempts that ended under the running leader (pid %d, since %s); medians within 1%%\n",
			r.PID, r.Since.Local().Format(time.DateTime))
	}
	if len(r.Stats) == 0 {
		fmt.Fprintln(w, "no attempt has ended yet")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "type\tjobs\tsucceeded\tfailed\tretries\twall min/median/max\tCPU min/median/max\tpeak memory")
	for _, k := range r.Stats {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", k.Kind, k.Jobs, k.Succeeded, k.Failed, k.Retries,
			spread(k.Wall), spread(k.CPU), size(k.PeakRSS))
	}
	tw.Flush()
}

func spread(s gaffer.Spread) string {
	if s.N == 0 {
		return "-"
	}
	return dur(s.Min) + "/" + dur(s.Median) + "/" + dur(s.Max)
}

// dur rounds a duration to three or so significant digits.
func dur(d time.Duration) string {
	switch {
	case d >= time.Hour:
		d = d.Round(time.Minute)
	case d >= time.Minute:
		d = d.Round(time.Second)
	case d >= 10*time.Second:
		d = d.Round(100 * time.Millisecond)
	case d >= time.Second:
		d = d.Round(10 * time.Millisecond)
	case d >= 100*time.Millisecond:
		d = d.Round(time.Millisecond)
	case d >= 10*time.Millisecond:
		d = d.Round(100 * time.Microsecond)
	case d >= time.Millisecond:
		d = d.Round(10 * time.Microsecond)
	case d >= time.Microsecond:
		d = d.Round(time.Microsecond)
	}
	return d.String()
}

// size prints a size in binary units.
func size(n int64) string {
	if n <= 0 {
		return "-"
	}
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, u := float64(n), -1
	for v >= unit && u < 4 {
		v /= unit
		u++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[u])
}
