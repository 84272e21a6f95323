// Package metrics keeps the views of job metrics that Scale keeps (its
// job.execution.metrics): totals, by job type, by node, and over time in
// blocks (five-minute blocks over the last three hours by default), fed
// by a leader's events (gaffer.Metrics) and read with Snapshot.
//
//	views := metrics.New(metrics.Options{})
//	leader, err := gaffer.NewLeader(gaffer.Config{Store: "wf.db", Metrics: views})
//	...
//	s := views.Snapshot()
//	fmt.Println(s.Total.OK, s.ByKind["fanout.leaf"].MeanWall())
//
// It is pure Go, with no dependency beyond gaffer; the Prometheus and
// OpenTelemetry adapters are the packages metrics/prometheus and
// metrics/otel. Tee feeds several receivers from one leader.
package metrics

import (
	"encoding/json"
	"maps"
	"net/http"
	"sync"
	"time"

	"github.com/gafferhq/gaffer"
)

// Counts are the figures of one view: attempts issued and ended, how
// they ended, and what they used.
type Counts struct {
	Issued  int // attempts issued
	Retries int // of those, retries (attempt 2 or later)
	Ended   int // attempts ended
	OK      int // of those, succeeded
	// Failed is Ended - OK: failures, rescues and the leader's kills (a
	// cancel: Reasons["killed"]).
	Failed  int
	Rescued int // of Failed, ended by the leader's rescue (lost, or over-long)
	// Reasons counts Failed by how the attempts ended
	// (gaffer.AttemptEnded.Reason); nil while none failed.
	Reasons map[string]int `json:",omitempty"`

	// Wall and CPU are summed over the ended attempts that reported them,
	// WallN and CPUN of them; MaxRSS is the largest peak resident memory
	// reported, in bytes. 0 means none reported (in-process attempts
	// report no CPU or memory).
	Wall, CPU   time.Duration
	WallN, CPUN int
	MaxRSS      int64
}

// MeanWall is the mean run time of the ended attempts that reported one
// (0 if none did).
func (c Counts) MeanWall() time.Duration {
	if c.WallN == 0 {
		return 0
	}
	return c.Wall / time.Duration(c.WallN)
}

// MeanCPU is the mean CPU time of the ended attempts that reported one
// (0 if none did).
func (c Counts) MeanCPU() time.Duration {
	if c.CPUN == 0 {
		return 0
	}
	return c.CPU / time.Duration(c.CPUN)
}

func (c *Counts) issued(e *gaffer.AttemptIssued) {
	c.Issued++
	if e.Retry() {
		c.Retries++
	}
}

func (c *Counts) ended(e *gaffer.AttemptEnded) {
	c.Ended++
	if e.OK {
		c.OK++
	} else {
		c.Failed++
		if e.Rescued {
			c.Rescued++
		}
		if c.Reasons == nil {
			c.Reasons = map[string]int{}
		}
		c.Reasons[e.Reason]++
	}
	if e.Wall > 0 {
		c.Wall += e.Wall
		c.WallN++
	}
	if e.CPU > 0 {
		c.CPU += e.CPU
		c.CPUN++
	}
	c.MaxRSS = max(c.MaxRSS, e.MaxRSS)
}

func (c Counts) clone() Counts {
	c.Reasons = maps.Clone(c.Reasons)
	return c
}

// views are the three views of one set of attempts: all of them, by job
// type, by node.
type views struct {
	total  Counts
	byKind map[string]*Counts
	byNode map[string]*Counts
}

func newViews() *views {
	return &views{byKind: map[string]*Counts{}, byNode: map[string]*Counts{}}
}

func of(m map[string]*Counts, k string) *Counts {
	c := m[k]
	if c == nil {
		c = &Counts{}
		m[k] = c
	}
	return c
}

func (v *views) issued(e *gaffer.AttemptIssued) {
	v.total.issued(e)
	of(v.byKind, e.Kind).issued(e)
}

func (v *views) ended(e *gaffer.AttemptEnded) {
	v.total.ended(e)
	of(v.byKind, e.Kind).ended(e)
	of(v.byNode, e.Node).ended(e)
}

func cloneAll(m map[string]*Counts) map[string]Counts {
	out := make(map[string]Counts, len(m))
	for k, c := range m {
		out[k] = c.clone()
	}
	return out
}

// Options configure Views. Zero fields mean the defaults.
type Options struct {
	// Block is the length of a time block; 0 means 5 minutes. Blocks
	// start at multiples of it (in UTC: a 5-minute block starts at :00,
	// :05, ...).
	Block time.Duration
	// Period is how far back the blocks go: the current block and the
	// ones before it, Period/Block blocks in all (rounded up); older ones
	// are dropped. 0 means 3 hours.
	Period time.Duration
	// Now is the clock that rolls the blocks over; nil means time.Now.
	Now func() time.Time
}

// Views receives a leader's events (it is a gaffer.Metrics) and keeps
// Scale's views of them. It is safe for concurrent use: the leader feeds
// it while other goroutines read Snapshot.
type Views struct {
	block time.Duration
	n     int // blocks kept
	now   func() time.Time

	mu      sync.Mutex
	all     *views
	blocks  []*timeBlock // oldest first, contiguous; the last is the current one
	status  gaffer.Status
	commits int
}

type timeBlock struct {
	start time.Time
	*views
}

// New returns empty views.
func New(o Options) *Views {
	if o.Block <= 0 {
		o.Block = 5 * time.Minute
	}
	if o.Period <= 0 {
		o.Period = 3 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	n := int((o.Period + o.Block - 1) / o.Block)
	return &Views{block: o.Block, n: n, now: o.Now, all: newViews()}
}

// AttemptIssued counts an issued attempt: in the totals, its job type's
// view, and the block of its issue time.
func (v *Views) AttemptIssued(e gaffer.AttemptIssued) {
	now := v.now()
	v.mu.Lock()
	defer v.mu.Unlock()
	v.all.issued(&e)
	if b := v.blockAt(now, e.Time); b != nil {
		b.issued(&e)
	}
}

// AttemptEnded counts an ended attempt: in the totals, its job type's
// and its node's views (an unknown node is ""), and the block of its end
// time.
func (v *Views) AttemptEnded(e gaffer.AttemptEnded) {
	now := v.now()
	v.mu.Lock()
	defer v.mu.Unlock()
	v.all.ended(&e)
	if b := v.blockAt(now, e.End); b != nil {
		b.ended(&e)
	}
}

// Committed keeps the workflow's status after the commit.
func (v *Views) Committed(c gaffer.Commit) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.status, v.commits = c.Status, c.Commits
}

// roll brings the blocks up to now: a new current block, blocks for any
// time between, and none older than the period. The caller holds v.mu.
func (v *Views) roll(now time.Time) {
	cur := now.Truncate(v.block)
	if len(v.blocks) == 0 || cur.Sub(v.blocks[len(v.blocks)-1].start) >= time.Duration(v.n)*v.block {
		clear(v.blocks)
		v.blocks = append(v.blocks[:0], &timeBlock{start: cur, views: newViews()})
		return
	}
	for last := v.blocks[len(v.blocks)-1].start; last.Before(cur); {
		last = last.Add(v.block)
		v.blocks = append(v.blocks, &timeBlock{start: last, views: newViews()})
	}
	if drop := len(v.blocks) - v.n; drop > 0 {
		clear(v.blocks[:drop])
		v.blocks = append(v.blocks[:0], v.blocks[drop:]...)
	}
}

// blockAt rolls the blocks up to now and returns the block holding t:
// the current one if t is zero or later than now, nil if t is older than
// the oldest block kept. The caller holds v.mu.
func (v *Views) blockAt(now, t time.Time) *timeBlock {
	v.roll(now)
	if t.IsZero() || t.After(now) {
		return v.blocks[len(v.blocks)-1]
	}
	i := t.Truncate(v.block).Sub(v.blocks[0].start) / v.block
	if i < 0 {
		return nil
	}
	return v.blocks[min(int(i), len(v.blocks)-1)]
}

// Block is the figures of one time block, [Start, End).
type Block struct {
	Start, End time.Time
	Total      Counts
	ByKind     map[string]Counts
	ByNode     map[string]Counts // ended attempts only; "" is an unknown node
}

// Snapshot is a copy of the views at one time.
type Snapshot struct {
	Time   time.Time
	Total  Counts
	ByKind map[string]Counts // by job type
	// ByNode counts ended attempts by the node that ran them ("": not
	// known); the node of an issued attempt is not known yet, so its
	// Issued and Retries are 0.
	ByNode map[string]Counts
	// Blocks are the time blocks, oldest first and the current one last,
	// empty ones included: attempts issued and ended in each, placed by
	// their issue and end times. They begin with the first event or
	// snapshot, and go back at most Options.Period.
	Blocks []Block
	// Status and Commits are as of the last commit reported
	// (gaffer.Commit).
	Status  gaffer.Status
	Commits int
}

// Snapshot returns a copy of the views, the blocks rolled up to now.
func (v *Views) Snapshot() Snapshot {
	now := v.now()
	v.mu.Lock()
	defer v.mu.Unlock()
	v.roll(now)
	s := Snapshot{
		Time: now, Total: v.all.total.clone(), ByKind: cloneAll(v.all.byKind), ByNode: cloneAll(v.all.byNode),
		Status: v.status, Commits: v.commits, Blocks: make([]Block, len(v.blocks)),
	}
	for i, b := range v.blocks {
		s.Blocks[i] = Block{Start: b.start, End: b.start.Add(v.block), Total: b.total.clone(), ByKind: cloneAll(b.byKind), ByNode: cloneAll(b.byNode)}
	}
	return s
}

// ServeHTTP writes a Snapshot as JSON (durations in nanoseconds).
func (v *Views) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v.Snapshot())
}

// Tee returns a receiver that passes every event to each of ms in turn
// (nil ones left out).
func Tee(ms ...gaffer.Metrics) gaffer.Metrics {
	var t tee
	for _, m := range ms {
		if m != nil {
			t = append(t, m)
		}
	}
	return t
}

type tee []gaffer.Metrics

func (t tee) AttemptIssued(e gaffer.AttemptIssued) {
	for _, m := range t {
		m.AttemptIssued(e)
	}
}

func (t tee) AttemptEnded(e gaffer.AttemptEnded) {
	for _, m := range t {
		m.AttemptEnded(e)
	}
}

func (t tee) Committed(c gaffer.Commit) {
	for _, m := range t {
		m.Committed(c)
	}
}

// Discard is a receiver that does nothing, to measure what the events
// cost the leader.
var Discard gaffer.Metrics = discard{}

type discard struct{}

func (discard) AttemptIssued(gaffer.AttemptIssued) {}
func (discard) AttemptEnded(gaffer.AttemptEnded)   {}
func (discard) Committed(gaffer.Commit)            {}
