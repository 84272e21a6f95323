// Package otel exports a leader's events (gaffer.Metrics) through the
// OpenTelemetry metric API: give it a metric.Meter from the program's
// MeterProvider (the SDK, with whatever exporter the program chose):
//
//	m, err := gafferotel.New(provider.Meter("github.com/gafferhq/gaffer"))
//	...
//	leader, err := gaffer.NewLeader(gaffer.Config{Store: "wf.db", Metrics: m})
//
// It imports only the API (go.opentelemetry.io/otel/metric), in a
// package of its own so that only programs that import it compile it
// (docs/dependencies.md). The instruments:
//
//	instrument                  kind       unit       attributes
//	gaffer.attempts.issued      counter    {attempt}  gaffer.job.kind, gaffer.job.category, gaffer.batch_system
//	gaffer.retries              counter    {attempt}  gaffer.job.kind (issued attempts after the first)
//	gaffer.attempts.ended       counter    {attempt}  gaffer.job.kind, gaffer.job.category, gaffer.batch_system,
//	                                                  gaffer.attempt.outcome (ok, failed), gaffer.attempt.reason
//	gaffer.rescues              counter    {attempt}  gaffer.job.kind, gaffer.attempt.reason (ended by the leader's rescue)
//	gaffer.node.attempts.ended  counter    {attempt}  gaffer.node ("" when unknown), gaffer.attempt.outcome
//	gaffer.attempt.duration     histogram  s          gaffer.job.kind (attempts that report a run time)
//	gaffer.attempt.cpu_time     counter    s          gaffer.job.kind (attempts that report CPU time)
//	gaffer.attempt.max_rss      histogram  By         gaffer.job.kind (attempts that report peak memory)
//	gaffer.commits              counter    {commit}   (store transactions that recorded job events)
//	gaffer.jobs                 gauge      {job}      gaffer.job.state: ready, issued, backoff, failed, skipped
//	gaffer.jobs.live            gauge      {job}      (jobs not finished with their subtree)
//	gaffer.services             gauge      {job}      (service jobs not yet ended)
//
// The gauges are as of the last commit.
package otel

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/gafferhq/gaffer"
)

// Attribute keys.
const (
	KeyKind        = attribute.Key("gaffer.job.kind")
	KeyCategory    = attribute.Key("gaffer.job.category")
	KeyBatchSystem = attribute.Key("gaffer.batch_system")
	KeyOutcome     = attribute.Key("gaffer.attempt.outcome")
	KeyReason      = attribute.Key("gaffer.attempt.reason")
	KeyNode        = attribute.Key("gaffer.node")
	KeyState       = attribute.Key("gaffer.job.state")
)

// Metrics is a gaffer.Metrics that records on OpenTelemetry instruments.
// It is safe for concurrent use.
type Metrics struct {
	issued, retries, ended, rescues, byNode, commits metric.Int64Counter
	duration                                         metric.Float64Histogram
	cpu                                              metric.Float64Counter
	maxRSS                                           metric.Int64Histogram
	jobs, live, services                             metric.Int64Gauge

	// Attribute sets, made once per combination of values: building one
	// sorts and allocates.
	mu   sync.Mutex
	sets map[setKey]metric.MeasurementOption
}

// New makes the instruments on meter.
func New(meter metric.Meter) (*Metrics, error) {
	m := &Metrics{sets: map[setKey]metric.MeasurementOption{}}
	var err error
	counter := func(name, unit, desc string) metric.Int64Counter {
		if err != nil {
			return nil
		}
		var c metric.Int64Counter
		c, err = meter.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		return c
	}
	gauge := func(name, desc string) metric.Int64Gauge {
		if err != nil {
			return nil
		}
		var g metric.Int64Gauge
		g, err = meter.Int64Gauge(name, metric.WithUnit("{job}"), metric.WithDescription(desc))
		return g
	}
	m.issued = counter("gaffer.attempts.issued", "{attempt}", "Job attempts handed to the batch system.")
	m.retries = counter("gaffer.retries", "{attempt}", "Job attempts issued after the job's first (retries).")
	m.ended = counter("gaffer.attempts.ended", "{attempt}", "Job attempts that ended, as the job store recorded them.")
	m.rescues = counter("gaffer.rescues", "{attempt}", "Job attempts the leader ended because the batch system lost them or they ran too long.")
	m.byNode = counter("gaffer.node.attempts.ended", "{attempt}", "Job attempts that ended, by the node that ran them.")
	m.commits = counter("gaffer.commits", "{commit}", "Job store transactions that recorded job events.")
	m.jobs = gauge("gaffer.jobs", "Live jobs by where they stand, as of the last commit.")
	m.live = gauge("gaffer.jobs.live", "Jobs not yet finished with their subtree, as of the last commit.")
	m.services = gauge("gaffer.services", "Service jobs not yet ended, as of the last commit.")
	if err != nil {
		return nil, err
	}
	if m.duration, err = meter.Float64Histogram("gaffer.attempt.duration", metric.WithUnit("s"),
		metric.WithDescription("Run time of ended job attempts."),
		metric.WithExplicitBucketBoundaries(0.001, 0.01, 0.1, 1, 10, 60, 600, 3600, 6*3600, 24*3600)); err != nil {
		return nil, err
	}
	if m.cpu, err = meter.Float64Counter("gaffer.attempt.cpu_time", metric.WithUnit("s"),
		metric.WithDescription("CPU time of ended job attempts that report it (worker processes).")); err != nil {
		return nil, err
	}
	if m.maxRSS, err = meter.Int64Histogram("gaffer.attempt.max_rss", metric.WithUnit("By"),
		metric.WithDescription("Peak resident memory of ended job attempts that report it (worker processes)."),
		metric.WithExplicitBucketBoundaries(1<<20, 16<<20, 256<<20, 1<<30, 4<<30, 16<<30, 64<<30, 256<<30)); err != nil {
		return nil, err
	}
	return m, nil
}

// shape is the keys of one kind of attribute set.
type shape struct {
	id   uint8
	keys []attribute.Key
}

var (
	issuedShape = shape{0, []attribute.Key{KeyKind, KeyCategory, KeyBatchSystem}}
	endedShape  = shape{1, []attribute.Key{KeyKind, KeyCategory, KeyBatchSystem, KeyOutcome, KeyReason}}
	kindShape   = shape{2, []attribute.Key{KeyKind}}
	rescueShape = shape{3, []attribute.Key{KeyKind, KeyReason}}
	nodeShape   = shape{4, []attribute.Key{KeyNode, KeyOutcome}}
	stateShape  = shape{5, []attribute.Key{KeyState}}
)

type setKey struct {
	shape  uint8
	values [5]string
}

// set returns the measurement option of the attributes of shape sh with
// values, made once.
func (m *Metrics) set(sh shape, values ...string) metric.MeasurementOption {
	k := setKey{shape: sh.id}
	copy(k.values[:], values)
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.sets[k]
	if !ok {
		kvs := make([]attribute.KeyValue, len(sh.keys))
		for i, key := range sh.keys {
			kvs[i] = key.String(values[i])
		}
		o = metric.WithAttributeSet(attribute.NewSet(kvs...))
		m.sets[k] = o
	}
	return o
}

// The events carry no context: the leader reports them after a commit.
var noCtx = context.Background()

// AttemptIssued counts an issued attempt, and a retry.
func (m *Metrics) AttemptIssued(e gaffer.AttemptIssued) {
	ctx := noCtx
	m.issued.Add(ctx, 1, m.set(issuedShape, e.Kind, e.Category, e.BatchSystem))
	if e.Retry() {
		m.retries.Add(ctx, 1, m.set(kindShape, e.Kind))
	}
}

// AttemptEnded counts an ended attempt, and records what it used.
func (m *Metrics) AttemptEnded(e gaffer.AttemptEnded) {
	ctx := noCtx
	outcome := "ok"
	if !e.OK {
		outcome = "failed"
	}
	m.ended.Add(ctx, 1, m.set(endedShape, e.Kind, e.Category, e.BatchSystem, outcome, e.Reason))
	m.byNode.Add(ctx, 1, m.set(nodeShape, e.Node, outcome))
	if e.Rescued {
		m.rescues.Add(ctx, 1, m.set(rescueShape, e.Kind, e.Reason))
	}
	kind := m.set(kindShape, e.Kind)
	if e.Wall > 0 {
		m.duration.Record(ctx, e.Wall.Seconds(), kind)
	}
	if e.CPU > 0 {
		m.cpu.Add(ctx, e.CPU.Seconds(), kind)
	}
	if e.MaxRSS > 0 {
		m.maxRSS.Record(ctx, e.MaxRSS, kind)
	}
}

// Committed counts the commit and records the gauges from its status.
func (m *Metrics) Committed(c gaffer.Commit) {
	ctx := noCtx
	m.commits.Add(ctx, 1)
	s := c.Status
	m.jobs.Record(ctx, int64(s.Ready), m.set(stateShape, "ready"))
	m.jobs.Record(ctx, int64(s.Issued), m.set(stateShape, "issued"))
	m.jobs.Record(ctx, int64(s.Backoff), m.set(stateShape, "backoff"))
	m.jobs.Record(ctx, int64(s.Failed), m.set(stateShape, "failed"))
	m.jobs.Record(ctx, int64(s.Skipped), m.set(stateShape, "skipped"))
	m.live.Record(ctx, int64(s.Live))
	m.services.Record(ctx, int64(s.Services))
}
