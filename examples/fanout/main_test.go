package main

import (
	"bufio"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// build compiles the example into a temporary directory.
func build(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the example with")
	}
	bin := filepath.Join(t.TempDir(), "fanout")
	out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	return bin
}

// scrape fetches url and sums, by metric name and kind label, the
// samples of the gaffer_ counters.
func scrape(t *testing.T, url string) (issued, ended map[string]float64) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	issued, ended = map[string]float64{}, map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		var m map[string]float64
		switch {
		case strings.HasPrefix(line, "gaffer_attempts_issued_total{"):
			m = issued
		case strings.HasPrefix(line, "gaffer_attempts_ended_total{"):
			m = ended
		default:
			continue
		}
		_, rest, _ := strings.Cut(line, `kind="`)
		kind, _, _ := strings.Cut(rest, `"`)
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		require.NoError(t, err, line)
		m[kind] += v
	}
	require.NoError(t, sc.Err())
	return issued, ended
}

// During a fan-out of 50,000 jobs in worker processes, one per job (-mode
// process: the pool would finish them in seconds), /metrics serves
// gaffer_ counters of issued and ended jobs by job type, and the count of
// ended jobs grows between two scrapes a second apart. Stderr is a pipe,
// so there is no progress line.
func TestMetricsDuringASubprocessRun(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("stops the example with an interrupt")
	}
	if testing.Short() {
		t.Skip("a minute of 50,000 jobs in worker processes")
	}
	bin := build(t)
	store := filepath.Join(t.TempDir(), "fanout.db")
	cmd := exec.Command(bin, "-n", "50000", "-mode", "process", "-metrics", "127.0.0.1:0", "-store", store)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			t.Error("the example did not stop within a minute of an interrupt")
		}
	}()

	var url string
	var all []string
	deadline := time.After(time.Minute)
	for url == "" {
		select {
		case line, ok := <-lines:
			require.True(t, ok, "the example ended: %v", all)
			all = append(all, line)
			if _, addr, ok := strings.Cut(line, "metrics at "); ok {
				url = addr
			}
		case <-deadline:
			t.Fatalf("no metrics address within a minute: %v", all)
		}
	}

	// Wait for the first leaves to end: the root stores 50,000 jobs, and
	// the leader issues the first 10,000 (Config.MaxIssued), writing each
	// one's input to its folder, before it records any end.
	issued, ended := scrape(t, url)
	for start := time.Now(); ended["fanout.leaf"] == 0; issued, ended = scrape(t, url) {
		require.Less(t, time.Since(start), 2*time.Minute, "no leaf ended within two minutes")
		time.Sleep(200 * time.Millisecond)
	}
	require.Equal(t, 1.0, issued["fanout.root"])
	require.Equal(t, 1.0, ended["fanout.root"])
	require.Positive(t, issued["fanout.leaf"])

	// Then scrape a second apart. The leader records ends in bursts:
	// after a commit of ends it issues as many new jobs, and while it
	// issues (each one's input written, on two cores shared with twenty
	// worker processes starting and whatever else the machine runs) it
	// records none, for seconds on a loaded machine. So: the counts never
	// go down, and within a minute of pairs at least one shows leaves
	// ending between its scrapes.
	grew := false
	for i := 0; i < 60 && !grew; i++ {
		time.Sleep(time.Second)
		issued2, ended2 := scrape(t, url)
		t.Logf("scrape %d: issued %v, ended %v", i+1, issued2, ended2)
		require.GreaterOrEqual(t, ended2["fanout.leaf"], ended["fanout.leaf"])
		require.GreaterOrEqual(t, issued2["fanout.leaf"], issued["fanout.leaf"])
		require.Less(t, ended2["fanout.leaf"], 50000.0, "the run was still going")
		grew = ended2["fanout.leaf"] > ended["fanout.leaf"]
		issued, ended = issued2, ended2
	}
	require.True(t, grew, "no leaf ended between two scrapes a second apart, sixty times in a row")

	// Nothing else came to stderr: no progress line on a pipe.
	for {
		select {
		case line := <-lines:
			require.NotContains(t, line, "jobs/s", "a progress line on a pipe")
			continue
		default:
		}
		break
	}
}

// -progress prints the line on a pipe, a line at a time, the last one
// with all jobs done.
func TestProgressWhenAsked(t *testing.T) {
	bin := build(t)
	out, err := exec.Command(bin, "-n", "3000", "-progress").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "fanout: 3,002/3,002 jobs (100.0%), ")
	require.NotContains(t, string(out), "\r")
}
