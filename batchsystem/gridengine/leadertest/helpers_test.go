package leadertest

import (
	"bufio"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem/gridengine"
)

// pollInterval is the adapter's poll interval in these tests: short, so
// that tests are quick; the adapter's default is 5 s.
const pollInterval = 250 * time.Millisecond

const (
	envMarks = "GAFFER_LT_MARKS" // file the marking jobs append to
	envPhase = "GAFFER_LT_PHASE" // which leader submitted the job
)

func needCluster(t *testing.T) {
	t.Helper()
	if os.Getenv("GAFFER_GRIDENGINE") != "1" {
		t.Skip("needs a Grid Engine cluster; run: scripts/gridengine-cluster.sh up && GAFFER_GRIDENGINE=1 go test ./batchsystem/gridengine/leadertest")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "qstat").CombinedOutput()
	require.NoError(t, err, "GAFFER_GRIDENGINE=1 but qstat does not answer (%s); start the cluster with scripts/gridengine-cluster.sh up", out)
}

var prefixSeq atomic.Int64

// uniquePrefix is a job-name prefix that no other test, and no other run
// of this binary, uses: qstat's listing is searched by it.
func uniquePrefix(tag string) string {
	return fmt.Sprintf("glt%d-%d-%s", os.Getpid(), prefixSeq.Add(1), tag)
}

// newGE returns a Grid Engine batch system for one test, shut down at its
// end.
func newGE(t *testing.T, prefix string) *gridengine.BatchSystem {
	t.Helper()
	bs, err := gridengine.New(gridengine.Options{PollInterval: pollInterval, NamePrefix: prefix})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = bs.Shutdown(ctx)
	})
	return bs
}

// newLeader makes a leader on a fresh store in a temporary directory
// (absolute, so that the jobs find it), closed at the test's end.
func newLeader(t *testing.T, cfg gaffer.Config) (*gaffer.Leader, string) {
	t.Helper()
	if cfg.Store == "" {
		cfg.Store = t.TempDir() + "/wf.db"
	}
	l, err := gaffer.NewLeader(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l, cfg.Store
}

// geJob is one job of qstat's listing.
type geJob struct {
	Number string `xml:"JB_job_number"`
	Name   string `xml:"JB_name"`
	State  string `xml:"state"`
}

// jobsOf lists the jobs in qstat (which lists only jobs that have not
// ended) whose name starts with prefix; with running, only those whose
// state says they run.
func jobsOf(t *testing.T, prefix string, running bool) []geJob {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "qstat", "-xml").Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Fatalf("qstat: %v: %s", err, ee.Stderr)
	}
	require.NoError(t, err)
	dec := xml.NewDecoder(strings.NewReader(string(out)))
	var res []geJob
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "job_list" {
			var j geJob
			require.NoError(t, dec.DecodeElement(&j, &se))
			if strings.HasPrefix(j.Name, prefix+"_") && (!running || strings.ContainsAny(j.State, "rt")) {
				res = append(res, j)
			}
		}
	}
	return res
}

// mark appends one line to the marks file: what happened, the gaffer job
// ID, the Grid Engine job number and the phase (the leader that submitted
// the job). One short O_APPEND write per line, so lines of concurrent
// jobs do not mix.
func mark(what string, jc *gaffer.JobContext) {
	path := os.Getenv(envMarks)
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s %d %s %s %d\n", what, jc.ID(), os.Getenv("JOB_ID"), os.Getenv(envPhase), jc.Attempt())
}

type markLine struct {
	what, number, phase string
	job                 uint64
	attempt             int
}

func readMarks(t *testing.T, path string) []markLine {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	var res []markLine
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		var m markLine
		if n, _ := fmt.Sscanf(sc.Text(), "%s %d %s %s %d", &m.what, &m.job, &m.number, &m.phase, &m.attempt); n == 5 {
			res = append(res, m)
		}
	}
	return res
}

func countMarks(marks []markLine, what string) int {
	n := 0
	for _, m := range marks {
		if m.what == what {
			n++
		}
	}
	return n
}

// waitFor polls cond until it holds, failing the test after within.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
