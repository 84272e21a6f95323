package gaffer

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/gafferhq/gaffer/jobstore"
)

// Reading a store that no leader runs, for tools (cmd/gaffer): why its
// jobs wait, and per-type stats of its attempts. Both only read; open the
// store read-only (jobstore.BoltOptions.ReadOnly).

// WhyStored explains where jobs of a stored workflow stand, as a leader
// resuming it would see them: it loads the store's records into the
// leader's graph, and writes nothing. With no ids it explains up to limit
// jobs that have not finished, in ID order (limit <= 0: all), and total
// counts them. Loading costs what a leader's start costs: memory and time
// in proportion to the live jobs.
func WhyStored(ctx context.Context, s jobstore.Store, ids []JobID, limit int) (jobs []LiveJob, total int, err error) {
	g := newGraph(0, 0, 0)
	var m jobstore.Meta
	err = s.View(ctx, func(tx jobstore.ReadTx) error {
		if m, err = tx.Meta(); err != nil {
			return err
		}
		g.epoch, g.nextID, g.root = m.Epoch, m.NextID, m.Root
		for rec, err := range tx.Jobs() {
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			j, _ := g.fromRecord(rec)
			g.add(j)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	settled, restart, failed := g.reload()
	if m.Status == jobstore.StatusRunning {
		g.resumed(settled, restart, failed, m.Status)
	} else {
		g.outcome = m.Status
	}
	why := func(id JobID) LiveJob {
		lj := LiveJob{ID: id}
		j := g.jobs.get(id)
		switch {
		case j == nil && g.finishedJob(id):
			lj.Why = "done"
			return lj
		case j == nil:
			lj.Why = fmt.Sprintf("no such job: the workflow's jobs are j1 to j%d", uint64(g.nextID)-1)
			return lj
		}
		lj.Kind, lj.Name = j.kind, j.extra().name
		switch {
		case m.Status == jobstore.StatusCancelled && j.live():
			lj.Why = "will not run: the workflow was cancelled"
		case j.state == jobstore.StatePending && j.where == inReady:
			lj.Why = "ready: it runs when a leader runs the workflow again"
		default:
			lj.Why = g.why(id)
		}
		return lj
	}
	if len(ids) > 0 {
		for _, id := range ids {
			jobs = append(jobs, why(id))
		}
		return jobs, len(ids), nil
	}
	for id, j := range g.jobs.all() { // in ID order
		if j.state == jobstore.StateDone {
			continue
		}
		total++
		if limit <= 0 || len(jobs) < limit {
			jobs = append(jobs, why(id))
		}
	}
	return jobs, total, nil
}

// StoredStats sums up, by job type, the attempts a store records: every
// leader's (LiveStatus.Stats counts only the running leader's). Medians
// are exact here.
func StoredStats(ctx context.Context, s jobstore.Store) ([]KindStats, error) {
	type agg struct {
		KindStats
		wall, cpu []time.Duration
	}
	kinds := map[string]*agg{}
	err := s.View(ctx, func(tx jobstore.ReadTx) error {
		var last JobID
		for a, err := range tx.Attempts(0) {
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			k := kinds[a.Kind]
			if k == nil {
				k = &agg{KindStats: KindStats{Kind: a.Kind}}
				kinds[a.Kind] = k
			}
			if a.Job != last { // attempts come by job
				k.Jobs++
				last = a.Job
			}
			k.Attempts++
			if a.OK {
				k.Succeeded++
			} else {
				k.Failed++
			}
			if a.Wall > 0 {
				k.wall = append(k.wall, a.Wall)
			}
			if a.CPU > 0 {
				k.cpu = append(k.cpu, a.CPU)
			}
			k.PeakRSS = max(k.PeakRSS, a.MaxRSS)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]KindStats, 0, len(kinds))
	for _, k := range kinds {
		k.Retries = k.Attempts - k.Jobs
		k.Wall, k.CPU = spreadOf(k.wall), spreadOf(k.cpu)
		out = append(out, k.KindStats)
	}
	slices.SortFunc(out, func(a, b KindStats) int { return cmp.Compare(a.Kind, b.Kind) })
	return out, nil
}

// spreadOf returns the least, lower median and greatest of ds.
func spreadOf(ds []time.Duration) Spread {
	if len(ds) == 0 {
		return Spread{}
	}
	slices.Sort(ds)
	return Spread{N: len(ds), Min: ds[0], Median: ds[(len(ds)-1)/2], Max: ds[len(ds)-1]}
}
