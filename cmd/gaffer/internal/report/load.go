// Package report makes what a person looks at after a workflow ran: an
// HTML report (timeline, figures per job type, failures, critical path)
// and a drawing of the job graph, both from the job store alone.
package report

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/gafferhq/gaffer/jobstore"
)

// attempt is what the report keeps of one attempt record: a million of
// them must fit, so no logs, errors or requirements.
type attempt struct {
	job        jobstore.JobID
	kind       int32 // index into data.kinds
	n          int32
	start, end int64 // Unix nanoseconds; 0 when not known
	wall, cpu  time.Duration
	rss        int64
	ok         bool
	node       string
}

// job is one job that ran at least once, or is still stored.
type job struct {
	id    jobstore.JobID
	kind  int32
	name  string
	cost  time.Duration // wall time of all its attempts
	preds []jobstore.JobID
	// state is the live record's state; 0 when the job is no longer
	// stored (it finished).
	state    jobstore.State
	failed   bool // its last attempt failed, or its stored state says so
	attempts int32
	// Successor edges of a stored job, to tell children from follow-ons.
	children, followOns, services jobstore.IDList
}

// failure is a failed attempt, for the table of failures.
type failure struct {
	job               jobstore.JobID
	kind, name        string
	n                 int
	node, reason, err string
	exit              int
	start             int64
	batchSys, batchID string
}

type data struct {
	meta     jobstore.Meta
	kinds    []string
	kindIdx  map[string]int32
	attempts []attempt
	jobs     []job // sorted by id
	failures []failure
	nFailed  int // failed attempts, all of them (failures holds the first few)
}

const maxFailures = 100

func (d *data) kind(k string) int32 {
	if i, ok := d.kindIdx[k]; ok {
		return i
	}
	i := int32(len(d.kinds))
	d.kinds = append(d.kinds, k)
	d.kindIdx[k] = i
	return i
}

// index finds a job by ID; -1 when it is not known.
func (d *data) index(id jobstore.JobID) int {
	i, ok := slices.BinarySearchFunc(d.jobs, id, func(j job, id jobstore.JobID) int { return cmp.Compare(j.id, id) })
	if !ok {
		return -1
	}
	return i
}

// load reads a store, read-only, in one pass over its attempts and one
// over its live jobs.
func load(ctx context.Context, storePath string) (*data, error) {
	s, err := jobstore.OpenBolt(storePath, &jobstore.BoltOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	d := &data{kindIdx: map[string]int32{}}
	err = s.View(ctx, func(tx jobstore.ReadTx) error {
		m, err := tx.Meta()
		if err != nil {
			return err
		}
		d.meta = m
		for a, err := range tx.Attempts(0) {
			if err != nil {
				return err
			}
			if len(d.attempts)%65536 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			d.add(a)
		}
		// Live records: jobs still stored (the root, jobs that did not
		// finish). Attempts come by job, so d.jobs is sorted so far.
		var extra []job
		for j, err := range tx.Jobs() {
			if err != nil {
				return err
			}
			i := d.index(j.ID)
			var p *job
			if i < 0 {
				extra = append(extra, job{id: j.ID, kind: d.kind(j.Kind), name: j.Name})
				p = &extra[len(extra)-1]
			} else {
				p = &d.jobs[i]
			}
			p.state = j.State
			p.preds = slices.Clone(j.Preds)
			p.children, p.followOns, p.services = j.Children, j.FollowOns, j.Services
			if j.State == jobstore.StateFailed {
				p.failed = true
			}
		}
		if len(extra) > 0 {
			d.jobs = append(d.jobs, extra...)
			slices.SortFunc(d.jobs, func(a, b job) int { return cmp.Compare(a.id, b.id) })
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", storePath, err)
	}
	return d, nil
}

func (d *data) add(a *jobstore.Attempt) {
	k := d.kind(a.Kind)
	x := attempt{job: a.Job, kind: k, n: int32(a.N), wall: a.Wall, cpu: a.CPU, rss: a.MaxRSS, ok: a.OK, node: a.Node}
	if !a.Start.IsZero() {
		x.start = a.Start.UnixNano()
	}
	if !a.End.IsZero() {
		x.end = a.End.UnixNano()
	}
	if x.wall == 0 && x.start != 0 && x.end > x.start {
		x.wall = time.Duration(x.end - x.start)
	}
	if x.node == "" {
		x.node = a.BatchSystem
	}
	d.attempts = append(d.attempts, x)
	if n := len(d.jobs); n == 0 || d.jobs[n-1].id != a.Job {
		d.jobs = append(d.jobs, job{id: a.Job, kind: k, name: a.Name, preds: a.Preds})
	}
	j := &d.jobs[len(d.jobs)-1]
	j.cost += x.wall
	j.attempts++
	j.failed = !a.OK
	if len(a.Preds) > 0 {
		j.preds = a.Preds
	}
	if !a.OK {
		d.nFailed++
		if len(d.failures) < maxFailures {
			d.failures = append(d.failures, failure{job: a.Job, kind: a.Kind, name: a.Name, n: a.N, node: a.Node,
				reason: a.Reason, err: a.Error, exit: a.ExitCode, start: x.start, batchSys: a.BatchSystem, batchID: a.BatchID})
		}
	}
}
