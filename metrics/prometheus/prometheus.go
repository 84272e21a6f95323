// Package prometheus exports a leader's events (gaffer.Metrics) as
// Prometheus metrics, with the official client (client_golang):
//
//	reg := prometheus.NewRegistry()
//	m, err := gafferprom.New(reg, nil)
//	...
//	leader, err := gaffer.NewLeader(gaffer.Config{Store: "wf.db", Metrics: m})
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// It is a package of its own so that only programs that import it compile
// client_golang (docs/dependencies.md). The metrics, all named gaffer_*:
//
//	gaffer_attempts_issued_total{kind,category,batch_system}   counter
//	gaffer_retries_total{kind}                                 counter: issued attempts after the first
//	gaffer_attempts_ended_total{kind,category,batch_system,outcome,reason}
//	                                                           counter; outcome is "ok" or "failed"
//	gaffer_rescues_total{kind,reason}                          counter: attempts ended by the leader's rescue
//	gaffer_node_attempts_ended_total{node,outcome}             counter; node "" is unknown
//	gaffer_attempt_wall_seconds{kind}                          histogram of run times (attempts that report one)
//	gaffer_attempt_cpu_seconds_total{kind}                     counter of CPU time (attempts that report it)
//	gaffer_attempt_max_rss_bytes{kind}                         histogram of peak memory (attempts that report it)
//	gaffer_commits_total                                       counter: store transactions that recorded job events
//	gaffer_jobs{state}                                         gauge: ready, issued, backoff, failed, skipped, as of the last commit
//	gaffer_jobs_live, gaffer_services                          gauges: live jobs and service jobs, as of the last commit
//
// category is the job's categories joined by "," ("" for none); kind is
// the job type, whose number a program sets, so label cardinality stays
// that of its job types, categories and exit reasons.
package prometheus

import (
	prom "github.com/prometheus/client_golang/prometheus"

	"github.com/gafferhq/gaffer"
)

// Options configure the metrics; nil means none.
type Options struct {
	// ConstLabels are added to every metric (a workflow's name, say).
	ConstLabels prom.Labels
}

// Metrics is a gaffer.Metrics that updates Prometheus metrics. It is safe
// for concurrent use, so several leaders may share one.
type Metrics struct {
	issued, retries, ended, rescues, byNode, cpu *prom.CounterVec
	wall, maxRSS                                 *prom.HistogramVec
	commits                                      prom.Counter
	jobs                                         *prom.GaugeVec
	live, services                               prom.Gauge
}

// New makes the metrics and registers them with reg.
func New(reg prom.Registerer, o *Options) (*Metrics, error) {
	if o == nil {
		o = &Options{}
	}
	c := func(name, help string, labels ...string) *prom.CounterVec {
		return prom.NewCounterVec(prom.CounterOpts{Namespace: "gaffer", Name: name, Help: help, ConstLabels: o.ConstLabels}, labels)
	}
	m := &Metrics{
		issued:  c("attempts_issued_total", "Job attempts handed to the batch system.", "kind", "category", "batch_system"),
		retries: c("retries_total", "Job attempts issued after the job's first (retries).", "kind"),
		ended: c("attempts_ended_total", "Job attempts that ended, as the job store recorded them; outcome is ok or failed, reason how they ended.",
			"kind", "category", "batch_system", "outcome", "reason"),
		rescues: c("rescues_total", "Job attempts the leader ended because the batch system lost them (missing) or they ran too long (maxjobduration).", "kind", "reason"),
		byNode:  c("node_attempts_ended_total", "Job attempts that ended, by the node that ran them (\"\" when not known).", "node", "outcome"),
		cpu:     c("attempt_cpu_seconds_total", "CPU time of ended job attempts that report it (worker processes).", "kind"),
		wall: prom.NewHistogramVec(prom.HistogramOpts{Namespace: "gaffer", Name: "attempt_wall_seconds", ConstLabels: o.ConstLabels,
			Help: "Run time of ended job attempts.", Buckets: prom.ExponentialBuckets(0.001, 4, 13)}, []string{"kind"}),
		maxRSS: prom.NewHistogramVec(prom.HistogramOpts{Namespace: "gaffer", Name: "attempt_max_rss_bytes", ConstLabels: o.ConstLabels,
			Help: "Peak resident memory of ended job attempts that report it (worker processes).", Buckets: prom.ExponentialBuckets(1<<20, 4, 11)}, []string{"kind"}),
		commits: prom.NewCounter(prom.CounterOpts{Namespace: "gaffer", Name: "commits_total", ConstLabels: o.ConstLabels,
			Help: "Job store transactions that recorded job events."}),
		jobs: prom.NewGaugeVec(prom.GaugeOpts{Namespace: "gaffer", Name: "jobs", ConstLabels: o.ConstLabels,
			Help: "Live jobs by where they stand (ready, issued, backoff, failed, skipped), as of the last commit."}, []string{"state"}),
		live: prom.NewGauge(prom.GaugeOpts{Namespace: "gaffer", Name: "jobs_live", ConstLabels: o.ConstLabels,
			Help: "Jobs not yet finished with their subtree, as of the last commit."}),
		services: prom.NewGauge(prom.GaugeOpts{Namespace: "gaffer", Name: "services", ConstLabels: o.ConstLabels,
			Help: "Service jobs not yet ended, as of the last commit."}),
	}
	for _, col := range []prom.Collector{m.issued, m.retries, m.ended, m.rescues, m.byNode, m.cpu, m.wall, m.maxRSS, m.commits, m.jobs, m.live, m.services} {
		if err := reg.Register(col); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// AttemptIssued counts an issued attempt, and a retry.
func (m *Metrics) AttemptIssued(e gaffer.AttemptIssued) {
	m.issued.WithLabelValues(e.Kind, e.Category, e.BatchSystem).Inc()
	if e.Retry() {
		m.retries.WithLabelValues(e.Kind).Inc()
	}
}

// AttemptEnded counts an ended attempt, and observes what it used.
func (m *Metrics) AttemptEnded(e gaffer.AttemptEnded) {
	outcome := "ok"
	if !e.OK {
		outcome = "failed"
	}
	m.ended.WithLabelValues(e.Kind, e.Category, e.BatchSystem, outcome, e.Reason).Inc()
	m.byNode.WithLabelValues(e.Node, outcome).Inc()
	if e.Rescued {
		m.rescues.WithLabelValues(e.Kind, e.Reason).Inc()
	}
	if e.Wall > 0 {
		m.wall.WithLabelValues(e.Kind).Observe(e.Wall.Seconds())
	}
	if e.CPU > 0 {
		m.cpu.WithLabelValues(e.Kind).Add(e.CPU.Seconds())
	}
	if e.MaxRSS > 0 {
		m.maxRSS.WithLabelValues(e.Kind).Observe(float64(e.MaxRSS))
	}
}

// Committed counts the commit and sets the gauges from its status.
func (m *Metrics) Committed(c gaffer.Commit) {
	m.commits.Inc()
	s := c.Status
	m.jobs.WithLabelValues("ready").Set(float64(s.Ready))
	m.jobs.WithLabelValues("issued").Set(float64(s.Issued))
	m.jobs.WithLabelValues("backoff").Set(float64(s.Backoff))
	m.jobs.WithLabelValues("failed").Set(float64(s.Failed))
	m.jobs.WithLabelValues("skipped").Set(float64(s.Skipped))
	m.live.Set(float64(s.Live))
	m.services.Set(float64(s.Services))
}
