package report

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gafferhq/gaffer/jobstore"
)

// fanoutStore writes a store like examples/fanout's after a run: a root,
// n leaves (the first one failing once), a sum follow-on.
func fanoutStore(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.db")
	s, err := jobstore.OpenBolt(path, &jobstore.BoltOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	err = s.Update(context.Background(), func(tx jobstore.Tx) error {
		first, err := tx.AllocIDs(n + 2)
		if err != nil {
			return err
		}
		root, sum := first, first+jobstore.JobID(n+1)
		if err := tx.SetMeta(jobstore.Meta{WorkflowID: "w", Created: t0, Root: root, Status: jobstore.StatusSucceeded, RootKind: "fanout.root"}); err != nil {
			return err
		}
		rj := &jobstore.Job{ID: root, Kind: "fanout.root", State: jobstore.StateDone}
		for i := 1; i <= n; i++ {
			rj.Children = rj.Children.Append(root + jobstore.JobID(i))
		}
		rj.FollowOns = rj.FollowOns.Append(sum)
		if err := tx.CreateJob(rj, nil); err != nil {
			return err
		}
		put := func(id jobstore.JobID, kind string, preds []jobstore.JobID, seq uint64, start time.Time, wall time.Duration, ok bool) error {
			a := &jobstore.Attempt{Job: id, N: 1, Epoch: 1, Seq: seq, Kind: kind, Preds: preds, BatchSystem: "local", Node: fmt.Sprintf("node%d", seq%3),
				Start: start, End: start.Add(wall), Wall: wall, CPU: wall / 2, MaxRSS: 10 << 20, OK: ok, Reason: "finished"}
			if !ok {
				a.Reason, a.Error, a.ExitCode = "failed", "boom <script>", 1
			}
			return tx.PutAttempt(a)
		}
		if err := put(root, "fanout.root", nil, 1, t0, time.Second, true); err != nil {
			return err
		}
		for i := 1; i <= n; i++ {
			st := t0.Add(time.Second + time.Duration(i)*time.Millisecond)
			if i == 1 {
				if err := put(root+1, "fanout.leaf", []jobstore.JobID{root}, 2, st, time.Second, false); err != nil {
					return err
				}
			}
			if err := put(root+jobstore.JobID(i), "fanout.leaf", []jobstore.JobID{root}, uint64(i+2), st, time.Duration(i)*time.Millisecond, true); err != nil {
				return err
			}
		}
		return put(sum, "fanout.sum", []jobstore.JobID{root}, uint64(n+3), t0.Add(3*time.Second), 2*time.Second, true)
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

var externalURL = regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?\s*https?:`)

func checkReport(t *testing.T, page string) {
	t.Helper()
	if !strings.Contains(page, "<svg") {
		t.Fatal("no inline SVG")
	}
	for _, k := range []string{"fanout.root", "fanout.leaf", "fanout.sum"} {
		if !regexp.MustCompile(`<text[^>]*>` + regexp.QuoteMeta(k) + `</text>`).MatchString(page) {
			t.Errorf("no SVG text names %s", k)
		}
	}
	if externalURL.MatchString(page) {
		t.Errorf("an external URL: %s", externalURL.FindString(page))
	}
	if strings.Contains(page, "<script") {
		t.Error("unescaped <script")
	}
}

func TestReportFewAttempts(t *testing.T) {
	var b bytes.Buffer
	if err := WriteHTML(context.Background(), fanoutStore(t, 300), &b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	checkReport(t, page)
	if !strings.Contains(page, "One bar per attempt") || !strings.Contains(page, "boom &lt;script&gt;") {
		t.Error("no bars or no failure")
	}
	// The critical path: root (1s), then sum (2s); the retried leaf takes 1.001s.
	if !strings.Contains(page, "2 jobs, 3s") {
		t.Error("critical path not root → sum, 3s")
	}
}

func TestReportManyAttempts(t *testing.T) {
	var b bytes.Buffer
	if err := WriteHTML(context.Background(), fanoutStore(t, 5000), &b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	checkReport(t, page)
	if !strings.Contains(page, "too many for a bar each") {
		t.Error("not binned")
	}
	if len(page) > 200<<10 {
		t.Errorf("report of 5000 jobs is %d bytes", len(page))
	}
}

func TestGraph(t *testing.T) {
	store := fanoutStore(t, 1000)
	for _, f := range []string{"dot", "mermaid"} {
		var b bytes.Buffer
		if err := WriteGraph(context.Background(), store, f, &b); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		if !strings.Contains(out, "fanout.leaf ×1000") || strings.Count(out, "\n") > 12 {
			t.Errorf("%s: leaves not collapsed:\n%s", f, out)
		}
		if f != "dot" {
			continue
		}
		dot, err := exec.LookPath("dot")
		if err != nil {
			if os.Getenv("GAFFER_BROWSER") != "" {
				t.Fatal("dot (graphviz) not installed")
			}
			t.Log("dot (graphviz) not installed: the DOT is not checked with it")
			continue
		}
		cmd := exec.Command(dot, "-Tsvg", "-o", os.DevNull)
		cmd.Stdin = &b
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("dot: %v\n%s", err, out)
		}
	}
	if err := WriteGraph(context.Background(), store, "png", &bytes.Buffer{}); err == nil {
		t.Error("format png: no error")
	}
}

// TestBrowser opens the report in headless Chromium: it must render
// (the SVG is in the DOM chromium dumps), log no console error, and
// leave a screenshot.
func TestBrowser(t *testing.T) {
	if os.Getenv("GAFFER_BROWSER") != "1" {
		t.Skip("set GAFFER_BROWSER=1 (.ci/run does) to open the report in headless Chromium")
	}
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("GAFFER_BROWSER=1 but no chromium: apt-get install chromium")
	}
	dir := t.TempDir()
	shots := os.Getenv("GAFFER_SCREENSHOT_DIR")
	if shots == "" {
		shots = dir
	}
	page := filepath.Join(dir, "report.html")
	f, err := os.Create(page)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteHTML(context.Background(), fanoutStore(t, 300), f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	run := func(args ...string) (stdout, stderr string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		args = append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + filepath.Join(dir, "profile"),
			"--enable-logging=stderr", "--v=0", "--window-size=1400,1000"}, args...)
		cmd := exec.CommandContext(ctx, bin, append(args, "file://"+page)...)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		if err := cmd.Run(); err != nil {
			t.Fatalf("chromium: %v\n%s", err, e.String())
		}
		return o.String(), e.String()
	}
	dom, logs := run("--dump-dom")
	if !strings.Contains(dom, "<svg") || !strings.Contains(dom, "fanout.leaf") {
		t.Errorf("the rendered DOM has no timeline SVG:\n%.2000s", dom)
	}
	shot := filepath.Join(shots, "report.png")
	_, logs2 := run("--screenshot=" + shot)
	for _, l := range strings.Split(logs+logs2, "\n") {
		if strings.Contains(l, "CONSOLE") || strings.Contains(l, "Uncaught") || strings.Contains(l, ":CONSOLE(") {
			t.Errorf("console: %s", l)
		}
	}
	if st, err := os.Stat(shot); err != nil || st.Size() == 0 {
		t.Fatalf("no screenshot: %v", err)
	}
	t.Logf("screenshot: %s", shot)
}
