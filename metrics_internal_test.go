package gaffer

import (
	"testing"
	"time"

	"github.com/gafferhq/gaffer/jobstore"
)

type nopMetrics struct{}

func (nopMetrics) AttemptIssued(AttemptIssued) {}
func (nopMetrics) AttemptEnded(AttemptEnded)   {}
func (nopMetrics) Committed(Commit)            {}

// BenchmarkReport measures what Config.Metrics costs the leader with a
// receiver that does nothing: one op is a plan of 10,000 attempts issued
// and ended (a commit's worth in the fan-out); ns/job is per attempt
// issued and ended.
func BenchmarkReport(b *testing.B) {
	const batch = 10000
	l := &Leader{cfg: Config{Metrics: nopMetrics{}, DefaultRequirements: Requirements{Cores: 1, Memory: 1 << 30, Disk: 1 << 30}},
		bsName: "local", g: newGraph(1, 0, 1)}
	p := newPlan()
	now := time.Now()
	for i := range batch {
		p.issued = append(p.issued, issuedNote{bs: 1, kind: "fanout.leaf", req: Requirements{Cores: 0.1}, job: JobID(i + 1), n: 1, at: now.UnixNano()})
		p.attempts = append(p.attempts, jobstore.Attempt{Job: JobID(i + 1), N: 1, Seq: uint64(i), Kind: "fanout.leaf", BatchSystem: "local",
			Node: "host", Start: now, End: now, Wall: time.Millisecond, OK: true, Reason: "finished"})
	}
	p.succeed = batch
	for b.Loop() {
		l.report(p)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/job")
}
