package simcluster

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/scaler"
)

var (
	_ batchsystem.BatchSystem        = (*Cluster)(nil)
	_ batchsystem.InProcess          = (*Cluster)(nil)
	_ batchsystem.SchedulingStatuser = (*Cluster)(nil)
)

// InProcess reports true: the cluster calls JobSpec.Run, when set, at the
// virtual end of the job.
func (c *Cluster) InProcess() bool { return true }

// Issue queues a job. A job that no node type could ever run is refused
// with an *batchsystem.InsufficientResourcesError.
func (c *Cluster) Issue(ctx context.Context, spec batchsystem.JobSpec) (batchsystem.ID, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shut {
		return 0, batchsystem.ErrShutdown
	}
	r := spec.Requirements
	need := res{toMilli(r.Cores), r.Memory, r.Disk}
	if err := c.possible(spec, need); err != nil {
		return 0, err
	}
	c.nextID++
	c.seq++
	j := &job{id: c.nextID, seq: c.seq, spec: spec, class: class{need, r.Preemptible}, state: queued}
	j.runtime = max(c.cfg.Runtime(spec), 0)
	c.jobs[j.id] = j
	q := c.classes[j.class]
	if q == nil {
		q = &queue{class: j.class}
		c.classes[j.class] = q
	}
	q.jobs = append(q.jobs, j)
	if !q.waiting {
		q.waiting = true
		c.waiting = append(c.waiting, q)
	}
	c.pending = true
	return j.id, nil
}

// possible checks that some node type could run the job.
func (c *Cluster) possible(spec batchsystem.JobSpec, need res) error {
	refuse := func(resource, requested, available string) error {
		return &batchsystem.InsufficientResourcesError{JobID: spec.JobID, Name: spec.Name,
			Resource: resource, Requested: requested, Available: available, System: "simcluster"}
	}
	if n := spec.Requirements.AcceleratorCount(""); n > 0 {
		return refuse("accelerators", fmt.Sprint(n), "0")
	}
	if need.milli < 0 || need.mem < 0 || need.disk < 0 {
		return fmt.Errorf("simcluster: job %s (%s): negative requirements %+v", spec.JobID, spec.Name, spec.Requirements)
	}
	var best res
	compatible := false
	for _, name := range c.order {
		t := c.types[name]
		if t.Shape.Preemptible && !spec.Requirements.Preemptible {
			continue
		}
		compatible = true
		have := capacity(t.Shape.Cores, t.Shape.Memory, t.Shape.Disk)
		if have.fits(need) {
			return nil
		}
		best = res{max(best.milli, have.milli), max(best.mem, have.mem), max(best.disk, have.disk)}
	}
	switch {
	case !compatible:
		return refuse("preemptible", "a non-preemptible node", "only preemptible node types")
	case need.milli > best.milli:
		return refuse("cores", fmt.Sprintf("%g", spec.Requirements.Cores), fmt.Sprintf("%g", float64(best.milli)/1000))
	case need.mem > best.mem:
		return refuse("memory", fmt.Sprint(need.mem), fmt.Sprint(best.mem))
	case need.disk > best.disk:
		return refuse("disk", fmt.Sprint(need.disk), fmt.Sprint(best.disk))
	}
	// Every resource fits some type, but no single type has them all.
	return refuse("cores, memory and disk together", fmt.Sprintf("%+v", spec.Requirements), "no single node type")
}

func capacity(cores float64, mem, disk int64) res { return res{toMilli(cores), mem, disk} }

// Kill removes jobs; they are never reported. Unknown IDs are ignored.
func (c *Cluster) Kill(ctx context.Context, ids []batchsystem.ID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shut {
		return batchsystem.ErrShutdown
	}
	for _, id := range ids {
		j, ok := c.jobs[id]
		if !ok {
			continue
		}
		delete(c.jobs, id)
		if j.state == running {
			c.release(j)
		}
		// A queued job is dropped by its queue's front(); a finished,
		// unreported one is skipped when reports are read.
		j.state = finished
	}
	return nil
}

// Issued lists jobs issued and not yet reported.
func (c *Cluster) Issued(ctx context.Context) ([]batchsystem.ID, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shut {
		return nil, batchsystem.ErrShutdown
	}
	ids := make([]batchsystem.ID, 0, len(c.jobs))
	for id := range c.jobs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// Running lists running jobs and how long, in virtual time, each has run.
func (c *Cluster) Running(ctx context.Context) (map[batchsystem.ID]time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shut {
		return nil, batchsystem.ErrShutdown
	}
	c.place()
	out := map[batchsystem.ID]time.Duration{}
	for _, nd := range c.nodes {
		for id, j := range nd.running {
			out[id] = c.now.Sub(j.start)
		}
	}
	return out, nil
}

// WaitFinished reports a job that stopped. Instead of sleeping it moves
// the virtual clock: to the next event if one is due within maxWait,
// otherwise by maxWait, and then returns (nil, nil).
func (c *Cluster) WaitFinished(ctx context.Context, maxWait time.Duration) (*batchsystem.FinishedJob, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.shut {
		c.mu.Unlock()
		return nil, batchsystem.ErrShutdown
	}
	j := c.advance(c.now.Add(max(maxWait, 0)))
	c.mu.Unlock()
	if j == nil {
		return nil, nil
	}
	f := j.result
	if f.Reason == batchsystem.Finished && j.spec.Run != nil {
		if err := j.spec.Run(ctx); err != nil {
			f.ExitCode, f.Message = 1, err.Error()
			var coded interface{ ExitCode() int }
			if errors.As(err, &coded) {
				f.ExitCode = coded.ExitCode()
			}
		}
	}
	return &f, nil
}

// advance processes events up to deadline until a job is to be reported,
// and returns it (already removed from the issued jobs), or nil with the
// clock at deadline.
func (c *Cluster) advance(deadline time.Time) *job {
	c.place()
	for {
		if j := c.nextReport(); j != nil {
			return j
		}
		if c.events.Len() == 0 || c.events[0].at.After(deadline) {
			if deadline.After(c.now) {
				c.now = deadline
			}
			return nil
		}
		e := heap.Pop(&c.events).(event)
		if e.at.After(c.now) {
			c.now = e.at
		}
		switch {
		case e.job != nil:
			j := e.job
			if j.state != running || !j.end.Equal(e.at) {
				continue // killed or lost since
			}
			c.finish(j, batchsystem.Finished, 0, "")
			c.fill(j.node)
		case e.node != nil:
			nd := e.node
			if c.byID[nd.id] != nd || nd.state != scaler.NodeStarting {
				continue
			}
			c.boot(nd)
		}
		c.place()
	}
}

func (c *Cluster) nextReport() *job {
	for len(c.reports) > 0 {
		id := c.reports[0]
		c.reports = c.reports[1:]
		j, ok := c.jobs[id]
		if !ok {
			continue // killed after it stopped
		}
		delete(c.jobs, id)
		if j.result.Reason == batchsystem.Finished {
			c.completed = append(c.completed, completedOf(j))
			c.stats.jobs++
		} else {
			c.stats.lost++
		}
		return j
	}
	return nil
}

// finish stops a running job and queues its report.
func (c *Cluster) finish(j *job, reason batchsystem.ExitReason, code int, msg string) {
	c.release(j)
	j.state = finished
	wall := c.now.Sub(j.start)
	c.stats.jobTime += wall
	j.result = batchsystem.FinishedJob{ID: j.id, ExitCode: code, Reason: reason, WallTime: wall,
		BackingID: j.node.id, Message: msg}
	c.reports = append(c.reports, j.id)
}

// release gives a running job's resources back to its node.
func (c *Cluster) release(j *job) {
	nd := j.node
	delete(nd.running, j.id)
	nd.free = nd.free.plus(j.class.need)
}

// SchedulingStatus says why a queued job is not running.
func (c *Cluster) SchedulingStatus(id batchsystem.ID) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	j, ok := c.jobs[id]
	if !ok || j.state != queued {
		return ""
	}
	up := 0
	for _, nd := range c.nodes {
		if nd.state == scaler.NodeRunning && !nd.drained {
			up++
		}
	}
	return fmt.Sprintf("waiting for %g cores, %d bytes memory, %d bytes disk on one of %d running nodes",
		float64(j.class.need.milli)/1000, j.class.need.mem, j.class.need.disk, up)
}

// Shutdown kills every job and terminates every node. Later calls to the
// batch system and AddNodes fail with batchsystem.ErrShutdown; Nodes,
// NodeTypes, Stats and Timeline keep working.
func (c *Cluster) Shutdown(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shut {
		return nil
	}
	for id, j := range c.jobs {
		if j.state == running {
			c.release(j)
		}
		j.state = finished
		delete(c.jobs, id)
	}
	c.reports = nil
	for _, nd := range slices.Clone(c.nodes) {
		c.terminate(nd)
	}
	c.shut = true
	return nil
}
