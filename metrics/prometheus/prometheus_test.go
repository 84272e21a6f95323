package prometheus_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem/local"
	"github.com/gafferhq/gaffer/examples/fanout/fanout"
	gafferprom "github.com/gafferhq/gaffer/metrics/prometheus"
)

// scrape fetches url and returns its samples, by metric name with
// labels as written ("gaffer_jobs{state=\"ready\"}").
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return parse(t, resp.Body)
}

func parse(t *testing.T, r io.Reader) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, line)
		out[line[:i]] = v
	}
	require.NoError(t, sc.Err())
	return out
}

// sum adds the samples of metric name whose labels include all of want.
func sum(samples map[string]float64, name string, want ...string) float64 {
	total := 0.0
	for k, v := range samples {
		if k != name && !strings.HasPrefix(k, name+"{") {
			continue
		}
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(k, w)
		}
		if ok {
			total += v
		}
	}
	return total
}

// A real run, scraped over HTTP when it has ended: every job issued and
// ended once, by job type, and the gauges of the last commit.
func TestScrapeAfterARun(t *testing.T) {
	const n = 500
	reg := prom.NewRegistry()
	m, err := gafferprom.New(reg, &gafferprom.Options{ConstLabels: prom.Labels{"workflow": "test"}})
	require.NoError(t, err)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	bs, err := local.New(local.Options{})
	require.NoError(t, err)
	defer bs.Shutdown(context.Background())
	l, err := gaffer.NewLeader(gaffer.Config{Store: filepath.Join(t.TempDir(), "wf.db"), BatchSystem: bs, Metrics: m, NoSync: true})
	require.NoError(t, err)
	defer l.Close()
	_, err = gaffer.Run(t.Context(), l, fanout.Root.New(n))
	require.NoError(t, err)

	s := scrape(t, srv.URL)
	require.Equal(t, float64(n), sum(s, "gaffer_attempts_issued_total", `kind="fanout.leaf"`, `workflow="test"`, `batch_system="`))
	require.Equal(t, float64(n+2), sum(s, "gaffer_attempts_issued_total"))
	require.Equal(t, float64(n), sum(s, "gaffer_attempts_ended_total", `kind="fanout.leaf"`, `outcome="ok"`, `reason="finished"`))
	require.Equal(t, float64(1), sum(s, "gaffer_attempts_ended_total", `kind="fanout.sum"`))
	require.Zero(t, sum(s, "gaffer_attempts_ended_total", `outcome="failed"`))
	require.Zero(t, sum(s, "gaffer_retries_total"))
	require.Equal(t, float64(n+2), sum(s, "gaffer_node_attempts_ended_total"))
	require.Equal(t, float64(n), sum(s, "gaffer_attempt_wall_seconds_count", `kind="fanout.leaf"`))
	require.Equal(t, float64(l.Stats().Commits), sum(s, "gaffer_commits_total"), "every commit recorded job events")
	require.Contains(t, s, "gaffer_jobs_live{workflow=\"test\"}")
	require.Zero(t, sum(s, "gaffer_jobs", `state="ready"`))
}

// Failures, retries and rescues, and worker processes' CPU and memory,
// without a leader.
func TestCounts(t *testing.T) {
	reg := prom.NewRegistry()
	m, err := gafferprom.New(reg, nil)
	require.NoError(t, err)
	m.AttemptIssued(gaffer.AttemptIssued{Kind: "k", Attempt: 1, Category: "gpu", BatchSystem: "slurm"})
	m.AttemptIssued(gaffer.AttemptIssued{Kind: "k", Attempt: 2, Category: "gpu", BatchSystem: "slurm"})
	m.AttemptEnded(gaffer.AttemptEnded{Kind: "k", Category: "gpu", BatchSystem: "slurm", Node: "n1", Reason: "missing", Rescued: true})
	m.AttemptEnded(gaffer.AttemptEnded{Kind: "k", Category: "gpu", BatchSystem: "slurm", Node: "n2", OK: true, Reason: "finished",
		Wall: 2e9, CPU: 15e8, MaxRSS: 64 << 20})
	m.Committed(gaffer.Commit{Commits: 3, Status: gaffer.Status{Live: 4, Ready: 2, Issued: 1, Backoff: 1}})
	_, err = gafferprom.New(reg, nil)
	require.Error(t, err, "registering twice")

	got, err := reg.Gather()
	require.NoError(t, err)
	var b strings.Builder
	for _, mf := range got {
		for _, metric := range mf.Metric {
			var labels []string
			for _, lp := range metric.Label {
				labels = append(labels, lp.GetName()+"="+lp.GetValue())
			}
			v := metric.GetCounter().GetValue() + metric.GetGauge().GetValue() + float64(metric.GetHistogram().GetSampleCount())
			b.WriteString(mf.GetName() + "{" + strings.Join(labels, ",") + "} " + strconv.FormatFloat(v, 'g', -1, 64) + "\n")
		}
	}
	s := parse(t, strings.NewReader(b.String()))
	require.Equal(t, map[string]float64{
		"gaffer_attempts_issued_total{batch_system=slurm,category=gpu,kind=k}":                              2,
		"gaffer_retries_total{kind=k}":                                                                      1,
		"gaffer_attempts_ended_total{batch_system=slurm,category=gpu,kind=k,outcome=failed,reason=missing}": 1,
		"gaffer_attempts_ended_total{batch_system=slurm,category=gpu,kind=k,outcome=ok,reason=finished}":    1,
		"gaffer_rescues_total{kind=k,reason=missing}":                                                       1,
		"gaffer_node_attempts_ended_total{node=n1,outcome=failed}":                                          1,
		"gaffer_node_attempts_ended_total{node=n2,outcome=ok}":                                              1,
		"gaffer_attempt_wall_seconds{kind=k}":                                                               1,
		"gaffer_attempt_cpu_seconds_total{kind=k}":                                                          1.5,
		"gaffer_attempt_max_rss_bytes{kind=k}":                                                              1,
		"gaffer_commits_total{}":                                                                            1,
		"gaffer_jobs{state=ready}":                                                                          2,
		"gaffer_jobs{state=issued}":                                                                         1,
		"gaffer_jobs{state=backoff}":                                                                        1,
		"gaffer_jobs{state=failed}":                                                                         0,
		"gaffer_jobs{state=skipped}":                                                                        0,
		"gaffer_jobs_live{}":                                                                                4,
		"gaffer_services{}":                                                                                 0,
	}, s)
}
