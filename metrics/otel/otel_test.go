package otel_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem/local"
	"github.com/gafferhq/gaffer/examples/fanout/fanout"
	gafferotel "github.com/gafferhq/gaffer/metrics/otel"
)

// collected reads what the SDK aggregated: each instrument's points as
// value by attribute set (rendered "k=v,k=v"); histograms give their
// counts.
func collected(t *testing.T, r *sdkmetric.ManualReader) map[string]map[string]float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.Collect(context.Background(), &rm))
	out := map[string]map[string]float64{}
	key := func(s attribute.Set) string {
		var k string
		for i, kv := range s.ToSlice() {
			if i > 0 {
				k += ","
			}
			k += string(kv.Key) + "=" + kv.Value.String()
		}
		return k
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			pts := map[string]float64{}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				require.True(t, d.IsMonotonic, m.Name)
				for _, p := range d.DataPoints {
					pts[key(p.Attributes)] = float64(p.Value)
				}
			case metricdata.Sum[float64]:
				for _, p := range d.DataPoints {
					pts[key(p.Attributes)] = p.Value
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					pts[key(p.Attributes)] = float64(p.Value)
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					pts[key(p.Attributes)] = float64(p.Count)
				}
			case metricdata.Histogram[int64]:
				for _, p := range d.DataPoints {
					pts[key(p.Attributes)] = float64(p.Count)
				}
			default:
				t.Fatalf("%s: unexpected data %T", m.Name, m.Data)
			}
			out[m.Name] = pts
		}
	}
	return out
}

func total(pts map[string]float64) float64 {
	s := 0.0
	for _, v := range pts {
		s += v
	}
	return s
}

func newMetrics(t *testing.T) (*gafferotel.Metrics, *sdkmetric.ManualReader) {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	m, err := gafferotel.New(mp.Meter("github.com/gafferhq/gaffer"))
	require.NoError(t, err)
	return m, r
}

// A real run through the SDK: every job issued and ended once, by job
// type, with run times, and the gauges of the last commit.
func TestARun(t *testing.T) {
	const n = 300
	m, r := newMetrics(t)
	bs, err := local.New(local.Options{})
	require.NoError(t, err)
	defer bs.Shutdown(context.Background())
	l, err := gaffer.NewLeader(gaffer.Config{Store: filepath.Join(t.TempDir(), "wf.db"), BatchSystem: bs, Metrics: m, NoSync: true})
	require.NoError(t, err)
	defer l.Close()
	_, err = gaffer.Run(t.Context(), l, fanout.Root.New(n))
	require.NoError(t, err)

	got := collected(t, r)
	leafIssued := "gaffer.batch_system=local,gaffer.job.category=,gaffer.job.kind=fanout.leaf"
	require.Equal(t, float64(n), got["gaffer.attempts.issued"][leafIssued], "%v", got["gaffer.attempts.issued"])
	require.Equal(t, float64(n+2), total(got["gaffer.attempts.issued"]))
	require.Equal(t, float64(n), got["gaffer.attempts.ended"]["gaffer.attempt.outcome=ok,gaffer.attempt.reason=finished,"+leafIssued],
		"%v", got["gaffer.attempts.ended"])
	require.Equal(t, float64(n+2), total(got["gaffer.attempts.ended"]))
	require.Equal(t, float64(n), got["gaffer.attempt.duration"]["gaffer.job.kind=fanout.leaf"])
	require.Equal(t, float64(l.Stats().Commits), total(got["gaffer.commits"]))
	require.Zero(t, got["gaffer.jobs"]["gaffer.job.state=ready"])
	require.Contains(t, got["gaffer.jobs"], "gaffer.job.state=issued")
	require.Empty(t, got["gaffer.retries"])
}

// Retries, rescues, CPU, memory and gauges, without a leader.
func TestEvents(t *testing.T) {
	m, r := newMetrics(t)
	m.AttemptIssued(gaffer.AttemptIssued{Kind: "k", Attempt: 1, Category: "gpu", BatchSystem: "slurm"})
	m.AttemptIssued(gaffer.AttemptIssued{Kind: "k", Attempt: 2, Category: "gpu", BatchSystem: "slurm"})
	m.AttemptIssued(gaffer.AttemptIssued{Kind: "k", Attempt: 1}) // another attribute set, same kind
	m.AttemptEnded(gaffer.AttemptEnded{Kind: "k", Category: "gpu", BatchSystem: "slurm", Node: "n1", Reason: "missing", Rescued: true})
	m.AttemptEnded(gaffer.AttemptEnded{Kind: "k", Category: "gpu", BatchSystem: "slurm", Node: "n2", OK: true, Reason: "finished",
		Wall: 2e9, CPU: 15e8, MaxRSS: 64 << 20})
	m.Committed(gaffer.Commit{Commits: 3, Status: gaffer.Status{Live: 4, Ready: 2, Issued: 1, Backoff: 1, Services: 1}})

	got := collected(t, r)
	require.Equal(t, map[string]float64{
		"gaffer.batch_system=slurm,gaffer.job.category=gpu,gaffer.job.kind=k": 2,
		"gaffer.batch_system=,gaffer.job.category=,gaffer.job.kind=k":         1,
	}, got["gaffer.attempts.issued"])
	require.Equal(t, map[string]float64{"gaffer.job.kind=k": 1}, got["gaffer.retries"])
	require.Equal(t, map[string]float64{"gaffer.attempt.reason=missing,gaffer.job.kind=k": 1}, got["gaffer.rescues"])
	require.Equal(t, map[string]float64{"gaffer.attempt.outcome=failed,gaffer.node=n1": 1, "gaffer.attempt.outcome=ok,gaffer.node=n2": 1},
		got["gaffer.node.attempts.ended"])
	require.Equal(t, map[string]float64{"gaffer.job.kind=k": 1.5}, got["gaffer.attempt.cpu_time"])
	require.Equal(t, map[string]float64{"gaffer.job.kind=k": 1}, got["gaffer.attempt.max_rss"])
	require.Equal(t, map[string]float64{"gaffer.job.kind=k": 1}, got["gaffer.attempt.duration"])
	require.Equal(t, map[string]float64{"": 1}, got["gaffer.commits"])
	require.Equal(t, map[string]float64{"gaffer.job.state=ready": 2, "gaffer.job.state=issued": 1, "gaffer.job.state=backoff": 1,
		"gaffer.job.state=failed": 0, "gaffer.job.state=skipped": 0}, got["gaffer.jobs"])
	require.Equal(t, map[string]float64{"": 4}, got["gaffer.jobs.live"])
	require.Equal(t, map[string]float64{"": 1}, got["gaffer.services"])
}
