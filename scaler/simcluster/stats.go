package simcluster

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/gafferhq/gaffer/scaler"
)

// Stats sums up a simulated run, as Toil's mock does, plus cost.
type Stats struct {
	TotalJobs        int            // jobs that finished (reported Finished)
	LostJobs         int            // jobs reported Lost because their node was terminated
	MaxNodes         map[string]int // most nodes of each type alive at once (Toil's maxWorkers)
	WorkerTime       time.Duration  // summed lifetime of every node
	WorkerTimePerJob time.Duration  // WorkerTime / TotalJobs
	JobTime          time.Duration  // summed run time of every job
	NodeHours        map[string]float64
	Cost             float64       // node-hours times each type's price per hour
	Elapsed          time.Duration // virtual time since the start
}

type stats struct {
	jobs, lost int
	jobTime    time.Duration
	alive      map[string]int
	max        map[string]int
	closed     map[string]time.Duration // lifetime of terminated nodes
}

func (s *stats) init(types []string) {
	s.alive, s.max, s.closed = map[string]int{}, map[string]int{}, map[string]time.Duration{}
	for _, t := range types {
		s.alive[t], s.max[t], s.closed[t] = 0, 0, 0
	}
}

func (s *stats) started(nd *node) {
	s.alive[nd.typ.Name]++
	s.max[nd.typ.Name] = max(s.max[nd.typ.Name], s.alive[nd.typ.Name])
}

func (s *stats) stopped(nd *node, now time.Time) {
	s.alive[nd.typ.Name]--
	s.closed[nd.typ.Name] += now.Sub(nd.launched)
}

// Stats returns the figures so far; nodes still alive count up to now.
func (c *Cluster) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	life := maps.Clone(c.stats.closed)
	for _, nd := range c.nodes {
		life[nd.typ.Name] += c.now.Sub(nd.launched)
	}
	st := Stats{TotalJobs: c.stats.jobs, LostJobs: c.stats.lost, MaxNodes: maps.Clone(c.stats.max),
		JobTime: c.stats.jobTime, NodeHours: map[string]float64{}, Elapsed: c.now.Sub(c.cfg.Start)}
	for _, name := range c.order {
		st.WorkerTime += life[name]
		h := life[name].Hours()
		st.NodeHours[name] = h
		st.Cost += h * c.types[name].PricePerHour
	}
	if st.TotalJobs > 0 {
		st.WorkerTimePerJob = st.WorkerTime / time.Duration(st.TotalJobs)
	}
	return st
}

// Sample is the number of nodes of each type from At on.
type Sample struct {
	At    time.Time
	Nodes map[string]int
}

func (c *Cluster) sample() {
	s := Sample{At: c.now, Nodes: maps.Clone(c.stats.alive)}
	if n := len(c.timeline); n > 0 && c.timeline[n-1].At.Equal(s.At) {
		c.timeline[n-1] = s
		return
	}
	c.timeline = append(c.timeline, s)
}

// Timeline returns every change in the number of nodes, oldest first.
func (c *Cluster) Timeline() []Sample {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.timeline)
}

// Workload returns the cluster's view of its jobs as a scaler.Workload,
// standing in for the leader: Issued lists every job issued and not yet
// reported; Completed returns the jobs reported Finished since its last
// call. Only one scaler should consume it.
func (c *Cluster) Workload() scaler.Workload { return workload{c} }

type workload struct{ c *Cluster }

func (w workload) Issued(ctx context.Context) ([]scaler.Job, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := w.c
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]scaler.Job, 0, len(c.jobs))
	for _, j := range c.jobs {
		out = append(out, scaler.Job{Kind: j.spec.Kind, Requirements: j.spec.Requirements})
	}
	return out, nil
}

func (w workload) Completed(ctx context.Context) ([]scaler.CompletedJob, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := w.c
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.completed
	c.completed = nil
	return out, nil
}

func completedOf(j *job) scaler.CompletedJob {
	return scaler.CompletedJob{Kind: j.spec.Kind, Requirements: j.spec.Requirements, WallTime: j.result.WallTime}
}
