// Package simcluster is a cluster simulated in virtual time: a
// batchsystem.BatchSystem, a scaler.Provisioner and a scaler.Drainer at
// once, so that the scaler, and later the leader, can be run against
// hundreds of thousands of jobs in seconds. It is Toil's
// MockBatchSystemAndProvisioner made discrete-event: no goroutine sleeps,
// WaitFinished moves the clock to the next event.
//
// Caveats, bluntly:
//
//   - Nothing happens between calls: virtual time only advances inside
//     WaitFinished (and Drive). A job that finishes is noticed when some
//     caller waits.
//   - Nodes offer their whole NodeType shape to jobs; the scaler reserves
//     overhead, so it slightly over-provisions the simulation unless
//     scaler.Config.AssumeZeroOverhead is set.
//   - Placement is first fit in node creation order, oldest waiting job
//     first among those that fit; no real scheduler is that simple.
//   - Job runtimes are exactly what Config.Runtime says; JobSpec.Run, when
//     set, is called at the virtual end of the job in the caller's real
//     time, and its error is the job's result.
//   - Terminated nodes vanish at once (no stopping state) and their running
//     jobs are reported Lost. Nodes are never preempted on their own.
package simcluster

import (
	"container/heap"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/scaler"
)

// Config describes a simulated cluster.
type Config struct {
	// NodeTypes are the node types the cluster can start.
	NodeTypes []scaler.NodeType
	// Runtime says how long a job runs, in virtual time. Required. A
	// negative result counts as 0.
	Runtime func(batchsystem.JobSpec) time.Duration
	// BootTime is the virtual time from AddNodes until a node takes jobs;
	// 0 means at once.
	BootTime time.Duration
	// Capacity caps how many nodes of a type may exist at once, as a cloud
	// short of spot instances would; a type missing from it is unlimited.
	Capacity map[string]int
	// StaticNodes is how many nodes of each type exist from the start.
	StaticNodes map[string]int
	// Start is the virtual clock's start; zero means 2000-01-01 UTC.
	Start time.Time
	// Logger gets debug messages; nil means silence.
	Logger *slog.Logger
}

// ErrBadConfig is matched by errors from New about an invalid Config.
var ErrBadConfig = errors.New("simcluster: bad config")

// Cluster is a simulated cluster. It is safe for concurrent use.
type Cluster struct {
	mu    sync.Mutex
	cfg   Config
	log   *slog.Logger
	types map[string]scaler.NodeType
	order []string // type names in configuration order

	now    time.Time
	events eventHeap
	seq    int64

	nextID  batchsystem.ID
	jobs    map[batchsystem.ID]*job // issued and not yet reported
	classes map[class]*queue
	waiting []*queue // classes with queued jobs, unordered
	reports []batchsystem.ID
	pending bool // jobs were issued since the last placement pass

	nextNode int
	nodes    []*node // alive, in creation order
	byID     map[string]*node
	static   map[string]bool

	completed []scaler.CompletedJob
	stats     stats
	timeline  []Sample
	shut      bool
}

// New returns a cluster with no jobs and only its static nodes.
func New(cfg Config) (*Cluster, error) {
	if cfg.Runtime == nil {
		return nil, fmt.Errorf("%w: Runtime is required", ErrBadConfig)
	}
	if len(cfg.NodeTypes) == 0 {
		return nil, fmt.Errorf("%w: no node types", ErrBadConfig)
	}
	if cfg.BootTime < 0 {
		return nil, fmt.Errorf("%w: negative boot time %s", ErrBadConfig, cfg.BootTime)
	}
	if cfg.Start.IsZero() {
		cfg.Start = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	c := &Cluster{
		cfg: cfg, log: cfg.Logger, types: map[string]scaler.NodeType{}, now: cfg.Start,
		jobs: map[batchsystem.ID]*job{}, classes: map[class]*queue{},
		byID: map[string]*node{}, static: map[string]bool{},
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	for _, t := range cfg.NodeTypes {
		if err := t.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadConfig, err)
		}
		if _, dup := c.types[t.Name]; dup {
			return nil, fmt.Errorf("%w: node type %q listed twice", ErrBadConfig, t.Name)
		}
		if t.Shape.WallTime == 0 {
			t.Shape.WallTime = time.Hour
		}
		c.types[t.Name] = t
		c.order = append(c.order, t.Name)
	}
	for name, n := range cfg.StaticNodes {
		if _, ok := c.types[name]; !ok || n < 0 {
			return nil, fmt.Errorf("%w: static nodes %d of %q", ErrBadConfig, n, name)
		}
	}
	c.stats.init(c.order)
	for _, name := range c.order {
		for range cfg.StaticNodes[name] {
			nd := c.startNode(c.types[name], true)
			c.static[nd.id] = true
		}
	}
	return c, nil
}

// Now is the virtual clock. Pass it as scaler.Config.Now.
func (c *Cluster) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// res is an amount of resources; cores in thousandths so that adding and
// removing fractional cores never drifts.
type res struct {
	milli     int64
	mem, disk int64
}

func toMilli(cores float64) int64 { return int64(math.Round(cores * 1000)) }

func (r res) fits(j res) bool { return j.milli <= r.milli && j.mem <= r.mem && j.disk <= r.disk }
func (r res) minus(j res) res { return res{r.milli - j.milli, r.mem - j.mem, r.disk - j.disk} }
func (r res) plus(j res) res  { return res{r.milli + j.milli, r.mem + j.mem, r.disk + j.disk} }

// class groups queued jobs with the same needs, so placement looks at a
// few classes instead of every queued job.
type class struct {
	need        res
	preemptible bool
}

type queue struct {
	class   class
	jobs    []*job
	head    int
	waiting bool // listed in Cluster.waiting
}

// front drops killed jobs and returns the oldest queued job, or nil.
func (q *queue) front() *job {
	for q.head < len(q.jobs) {
		if j := q.jobs[q.head]; j.state == queued {
			return j
		}
		q.jobs[q.head] = nil
		q.head++
	}
	q.jobs, q.head = q.jobs[:0], 0
	return nil
}

func (q *queue) pop() {
	q.jobs[q.head] = nil
	q.head++
	if q.head > 1024 && q.head*2 > len(q.jobs) {
		q.jobs = append(q.jobs[:0], q.jobs[q.head:]...)
		q.head = 0
	}
}

type jobState int

const (
	queued jobState = iota + 1
	running
	finished
)

type job struct {
	id      batchsystem.ID
	seq     int64
	spec    batchsystem.JobSpec
	class   class
	state   jobState
	node    *node
	start   time.Time
	end     time.Time // when running: the virtual end
	runtime time.Duration
	result  batchsystem.FinishedJob
}

type node struct {
	typ      scaler.NodeType
	id       string
	state    scaler.NodeState
	launched time.Time
	free     res
	running  map[batchsystem.ID]*job
	drained  bool
}

// event is a job end or a node boot.
type event struct {
	at   time.Time
	seq  int64
	job  *job  // a job ends
	node *node // a node boots
}

type eventHeap []event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(event)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

func (c *Cluster) schedule(e event) {
	c.seq++
	e.seq = c.seq
	heap.Push(&c.events, e)
}
