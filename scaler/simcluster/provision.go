package simcluster

import (
	"context"
	"fmt"
	"slices"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/scaler"
)

var (
	_ scaler.Provisioner = (*Cluster)(nil)
	_ scaler.Drainer     = (*Cluster)(nil)
)

// NodeTypes lists the configured node types.
func (c *Cluster) NodeTypes(ctx context.Context) ([]scaler.NodeType, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]scaler.NodeType, len(c.order))
	for i, name := range c.order {
		out[i] = c.types[name]
	}
	return out, nil
}

// AddNodes starts up to n nodes of the type, fewer when Config.Capacity
// says the simulated cloud has no more.
func (c *Cluster) AddNodes(ctx context.Context, nodeType string, n int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shut {
		return 0, batchsystem.ErrShutdown
	}
	t, ok := c.types[nodeType]
	if !ok {
		return 0, fmt.Errorf("simcluster: %w %q", scaler.ErrUnknownNodeType, nodeType)
	}
	if n < 0 {
		return 0, fmt.Errorf("simcluster: cannot add %d nodes", n)
	}
	if limit, ok := c.cfg.Capacity[nodeType]; ok {
		n = min(n, max(limit-c.stats.alive[nodeType], 0))
	}
	for range n {
		c.startNode(t, false)
	}
	return n, nil
}

func (c *Cluster) startNode(t scaler.NodeType, static bool) *node {
	c.nextNode++
	nd := &node{typ: t, id: fmt.Sprintf("%s-%d", t.Name, c.nextNode), state: scaler.NodeStarting,
		launched: c.now, free: capacity(t.Shape.Cores, t.Shape.Memory, t.Shape.Disk),
		running: map[batchsystem.ID]*job{}}
	c.nodes = append(c.nodes, nd)
	c.byID[nd.id] = nd
	c.stats.started(nd)
	c.sample()
	if c.cfg.BootTime == 0 || static {
		c.boot(nd)
	} else {
		c.schedule(event{at: c.now.Add(c.cfg.BootTime), node: nd})
	}
	return nd
}

func (c *Cluster) boot(nd *node) {
	nd.state = scaler.NodeRunning
	c.fill(nd)
}

// TerminateNodes stops nodes at once; their running jobs are reported
// Lost. Unknown IDs are ignored.
func (c *Cluster) TerminateNodes(ctx context.Context, ids []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		if nd, ok := c.byID[id]; ok {
			c.terminate(nd)
		}
	}
	return nil
}

func (c *Cluster) terminate(nd *node) {
	running := make([]*job, 0, len(nd.running))
	for _, j := range nd.running {
		running = append(running, j)
	}
	slices.SortFunc(running, func(a, b *job) int { return int(a.id - b.id) })
	for _, j := range running {
		c.finish(j, batchsystem.Lost, batchsystem.ExitUnavailable, "node "+nd.id+" terminated")
	}
	delete(c.byID, nd.id)
	c.nodes = slices.DeleteFunc(c.nodes, func(x *node) bool { return x == nd })
	c.stats.stopped(nd, c.now)
	c.sample()
}

// Nodes lists the nodes that are not terminated.
func (c *Cluster) Nodes(ctx context.Context) ([]scaler.Node, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.place()
	out := make([]scaler.Node, len(c.nodes))
	for i, nd := range c.nodes {
		out[i] = scaler.Node{ID: nd.id, Type: nd.typ.Name, State: nd.state, Launched: nd.launched, Workers: len(nd.running)}
	}
	return out, nil
}

// Drain stops placing jobs on the nodes. Unknown IDs are ignored.
func (c *Cluster) Drain(ctx context.Context, ids []string) error {
	return c.setDrained(ctx, ids, true)
}

// Undrain lets jobs be placed on the nodes again.
func (c *Cluster) Undrain(ctx context.Context, ids []string) error {
	return c.setDrained(ctx, ids, false)
}

func (c *Cluster) setDrained(ctx context.Context, ids []string, drained bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.place() // jobs issued before the drain may still land
	for _, id := range ids {
		if nd, ok := c.byID[id]; ok {
			nd.drained = drained
			if !drained {
				c.fill(nd)
			}
		}
	}
	return nil
}

// place puts queued jobs on nodes with room, if jobs were issued since the
// last time. Jobs are issued in bulk and placed at the next observation,
// so issuing n jobs costs one pass over the nodes, not n.
func (c *Cluster) place() {
	if !c.pending {
		return
	}
	c.pending = false
	for _, nd := range c.nodes {
		if len(c.waiting) == 0 {
			return
		}
		c.fill(nd)
	}
}

// fill puts queued jobs on one node while some fit: the oldest waiting job
// among the classes that fit goes first.
func (c *Cluster) fill(nd *node) {
	if nd.state != scaler.NodeRunning || nd.drained {
		return
	}
	for {
		var best *queue
		var bestJob *job
		c.waiting = slices.DeleteFunc(c.waiting, func(q *queue) bool {
			if q.front() == nil {
				q.waiting = false
				return true
			}
			return false
		})
		for _, q := range c.waiting {
			j := q.front()
			if (q.class.preemptible || !nd.typ.Shape.Preemptible) && nd.free.fits(q.class.need) &&
				(bestJob == nil || j.seq < bestJob.seq) {
				best, bestJob = q, j
			}
		}
		if best == nil {
			return
		}
		best.pop()
		j := bestJob
		j.state, j.node, j.start, j.end = running, nd, c.now, c.now.Add(j.runtime)
		nd.free = nd.free.minus(j.class.need)
		nd.running[j.id] = j
		c.schedule(event{at: j.end, job: j})
	}
}
