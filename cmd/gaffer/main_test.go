package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem/local"
	"github.com/gafferhq/gaffer/jobstore"
)

// The test binary is also a worker of subprocess jobs, and a leader
// process that a test starts (envLeader names its store).
const envLeader = "GAFFER_CMD_TEST_LEADER"

func TestMain(m *testing.M) {
	gaffer.ServeWorker()
	if store := os.Getenv(envLeader); store != "" {
		os.Exit(leaderMain(store))
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// chattyLines is how many lines a chatty job logs before it fails.
const chattyLines = 2000

var small = []gaffer.JobOption{gaffer.Cores(0.1), gaffer.Memory("32Mi"), gaffer.Disk("1Mi")}

// Chatty logs numbered lines and fails.
var Chatty = gaffer.MustRegister("cmdtest.chatty", func(ctx context.Context, jc *gaffer.JobContext, lines int) (int, error) {
	for i := range lines {
		jc.Logger().Info("chatter", "line", i)
	}
	jc.Logger().Info("the last line")
	return 0, fmt.Errorf("chatty fails after %d lines", lines)
}, small...)

var Leaf = gaffer.MustRegister("cmdtest.leaf", func(ctx context.Context, jc *gaffer.JobContext, i int) (int, error) {
	return i, nil
}, small...)

// Root has a chatty child when asked (the workflow then fails), leaves,
// and a follow-on leaf that never runs if the chatty one fails.
var Root = gaffer.MustRegister("cmdtest.root", func(ctx context.Context, jc *gaffer.JobContext, in rootIn) (int, error) {
	if in.Chatty {
		jc.AddChild(Chatty.New(chattyLines, gaffer.Name("chatty")))
	}
	for i := range in.Leaves {
		jc.AddChild(Leaf.New(i))
	}
	jc.AddFollowOn(Leaf.New(-1, gaffer.Name("after")))
	return 0, nil
}, small...)

type rootIn struct {
	Chatty bool
	Leaves int
}

// leaderMain runs a failing workflow with worker processes.
func leaderMain(store string) int {
	bs, err := local.New(local.Options{Mode: local.Subprocess, Cores: 2})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer bs.Shutdown(context.Background())
	l, err := gaffer.NewLeader(gaffer.Config{Store: store, BatchSystem: bs, RetryBackoff: -1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer l.Close()
	if _, err := gaffer.Run(context.Background(), l, Root.New(rootIn{Chatty: true, Leaves: 3})); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// gafferCmd runs the command in-process, as main does.
func gafferCmd(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(t.Context(), args, &out, &errOut)
	return out.String(), errOut.String(), code
}

func line1(t *testing.T, s string) string {
	t.Helper()
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// fileText reads a process's output from its file.
type fileText string

func (f fileText) String() string {
	b, _ := os.ReadFile(string(f))
	return string(b)
}

// binDir holds the programs the tests build, once per test binary.
var (
	binDir   string
	binOnce  sync.Map // program -> *sync.Once
	binErr   sync.Map // program -> error
	binDirMu sync.Mutex
)

// build builds a program of this module (such as "examples/fanout") and
// returns its path.
func build(t *testing.T, pkg string) string {
	t.Helper()
	binDirMu.Lock()
	if binDir == "" {
		d, err := os.MkdirTemp("", "gaffer-cmd-test-")
		require.NoError(t, err)
		binDir = d
	}
	dir := binDir
	binDirMu.Unlock()
	exe := filepath.Join(dir, filepath.Base(pkg))
	if runtime.GOOS == "windows" {
		exe += ".exe"
	}
	once, _ := binOnce.LoadOrStore(pkg, &sync.Once{})
	once.(*sync.Once).Do(func() {
		cmd := exec.Command("go", "build", "-o", exe, "github.com/gafferhq/gaffer/"+pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr.Store(pkg, fmt.Errorf("go build %s: %v\n%s", pkg, err, out))
		}
	})
	if err, ok := binErr.Load(pkg); ok {
		t.Fatal(err)
	}
	return exe
}

// smallStore runs a small workflow in this process and returns its
// store: the root j1, leaves j2 to j4, the follow-on j5.
func smallStore(t *testing.T) string {
	t.Helper()
	store := filepath.Join(t.TempDir(), "small.db")
	l, err := gaffer.NewLeader(gaffer.Config{Store: store})
	require.NoError(t, err)
	_, err = gaffer.Run(t.Context(), l, Root.New(rootIn{Leaves: 3}))
	require.NoError(t, err)
	require.NoError(t, l.Close())
	return store
}

// "After examples/fanout -n 1000 -store S: gaffer status S prints
// succeeded and exits 0; gaffer stats S has a line for fanout.leaf with
// 1000 jobs."
func TestFanoutFinished(t *testing.T) {
	fanout := build(t, "examples/fanout")
	store := filepath.Join(t.TempDir(), "S")
	out, err := exec.Command(fanout, "-n", "1000", "-store", store).CombinedOutput()
	require.NoError(t, err, "%s", out)

	stdout, stderr, code := gafferCmd(t, "status", store)
	require.Equal(t, exitOK, code, stderr)
	require.Equal(t, "succeeded", line1(t, stdout))
	require.Contains(t, stdout, "work dir  "+store+".work")
	require.Empty(t, stderr)

	stdout, stderr, code = gafferCmd(t, "stats", store)
	require.Equal(t, exitOK, code, stderr)
	var leaf []string
	for line := range strings.Lines(stdout) {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "fanout.leaf" {
			leaf = f
		}
	}
	require.NotNil(t, leaf, "a line for fanout.leaf:\n%s", stdout)
	require.Equal(t, []string{"fanout.leaf", "1000", "1000", "0", "0"}, leaf[:5], "jobs, succeeded, failed, retries:\n%s", stdout)

	stdout, _, code = gafferCmd(t, "stats", "-json", store)
	require.Equal(t, exitOK, code)
	require.Contains(t, stdout, `"kind": "fanout.leaf",
      "jobs": 1000,`)

	stdout, _, code = gafferCmd(t, "why", store)
	require.Equal(t, exitOK, code)
	require.Equal(t, "succeeded: no job is waiting (no leader runs)", line1(t, stdout))
}

// "During examples/fanout -n 200000 -mode subprocess -store S: gaffer
// status S prints running within a second; gaffer cancel S makes the
// fanout run exit non-zero within 5 seconds with an error containing
// cancelled." And: "gaffer clean S while the leader runs is refused;
// after it ends, it removes the store and the work directory." The
// issue's subprocess mode was one process per job, now -mode process: the
// pool (-mode subprocess today) would be done before the checks.
func TestFanoutLive(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 200,000 jobs' worth of worker processes for a while")
	}
	fanout := build(t, "examples/fanout")
	store := filepath.Join(t.TempDir(), "S")
	workDir := store + ".work"
	cmd := exec.Command(fanout, "-n", "200000", "-mode", "process", "-store", store)
	// The output goes to a file: with a pipe, Wait would also wait for
	// every worker process that inherited it to close it.
	outFile, err := os.Create(filepath.Join(t.TempDir(), "fanout.out"))
	require.NoError(t, err)
	defer outFile.Close()
	cmd.Stdout, cmd.Stderr = outFile, outFile
	errOut := fileText(outFile.Name())
	require.NoError(t, cmd.Start())
	exited, waited := make(chan error, 1), make(chan struct{})
	go func() { exited <- cmd.Wait(); close(waited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-waited
	})

	// Every status call answers at once (the live view never waits on
	// the leader); once the leader holds the store, it says running.
	status := func(args ...string) string {
		t.Helper()
		began := time.Now()
		stdout, stderr, code := gafferCmd(t, append([]string{"status"}, append(args, store)...)...)
		require.Less(t, time.Since(began), time.Second, "status answers within a second")
		if code == exitError && strings.Contains(stderr, "no such store") {
			return "" // not created yet
		}
		require.Equal(t, exitOK, code, stderr)
		return stdout
	}
	deadline := time.Now().Add(60 * time.Second)
	sawRunning := false
	for {
		var r statusReport
		if out := status("-json"); out != "" {
			require.NoError(t, json.Unmarshal([]byte(out), &r))
			sawRunning = sawRunning || r.Status == "running"
		}
		if r.Source == "leader" && r.Kinds["fanout.leaf"] == 200000 && r.States["issued"] > 0 {
			break // the leader has published, and issues leaves
		}
		require.True(t, time.Now().Before(deadline), "the leader never published issued leaves; last status: %+v\n%s", r, errOut.String())
		time.Sleep(100 * time.Millisecond)
	}
	require.True(t, sawRunning)
	stdout := status()
	require.Equal(t, "running", line1(t, stdout))
	require.Contains(t, stdout, "fanout.leaf  200000")

	// why: the snapshot's sample, and a job it does not hold, asked.
	stdout, stderr, code := gafferCmd(t, "why", store)
	require.Equal(t, exitOK, code, stderr)
	require.Contains(t, stdout, "fanout.leaf (j")
	stdout, stderr, code = gafferCmd(t, "why", store, "j1")
	require.Equal(t, exitOK, code, stderr)
	require.Equal(t, "fanout.root (j1): body done; waiting for 200000 child subtree(s)\n", stdout)
	stdout, stderr, code = gafferCmd(t, "stats", store)
	require.Equal(t, exitOK, code, stderr)
	require.Contains(t, stdout, "attempts that ended under the running leader")
	_, stderr, code = gafferCmd(t, "logs", store, "j999999")
	require.Equal(t, exitError, code)
	require.Contains(t, stderr, "no job j999999: the workflow's jobs are j1 to j200002")

	// clean is refused while the leader runs.
	_, stderr, code = gafferCmd(t, "clean", store)
	require.Equal(t, exitError, code)
	require.Contains(t, stderr, "a leader is running the workflow")
	require.FileExists(t, store)
	require.DirExists(t, workDir)

	// cancel ends the run, with an error that says so.
	began := time.Now()
	stdout, stderr, code = gafferCmd(t, "cancel", store)
	require.Equal(t, exitOK, code, stderr)
	require.Contains(t, stdout, "cancelled the workflow")
	select {
	case err = <-exited:
	case <-time.After(5*time.Second - time.Since(began)):
		t.Fatalf("fanout still runs 5 s after gaffer cancel began:\n%s", errOut.String())
	}
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "fanout exits non-zero")
	require.Contains(t, errOut.String(), "cancelled")
	t.Logf("fanout exited %v after gaffer cancel began: %s", time.Since(began).Round(time.Millisecond), strings.TrimSpace(errOut.String()))

	stdout, stderr, code = gafferCmd(t, "status", store)
	require.Equal(t, exitOK, code, stderr)
	require.Equal(t, "cancelled", line1(t, stdout))

	// clean, now that no leader runs.
	stdout, stderr, code = gafferCmd(t, "clean", store)
	require.Equal(t, exitOK, code, stderr)
	require.Equal(t, "removed "+store+"\nremoved "+workDir+"\n", stdout)
	require.NoFileExists(t, store)
	require.NoDirExists(t, workDir)
}

// "gaffer logs S JOB prints the whole log of a failed attempt of a
// workflow that failed." And status, why and stats on that workflow.
func TestFailedWorkflow(t *testing.T) {
	store := filepath.Join(t.TempDir(), "wf.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envLeader+"="+store)
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "the workflow fails")
	require.Contains(t, string(out), "chatty fails after")

	stdout, stderr, code := gafferCmd(t, "status", store)
	require.Equal(t, exitFailed, code, "status exits 1 for a failed workflow: %s", stderr)
	require.Equal(t, "failed", line1(t, stdout))
	require.Contains(t, stdout, "failed: 1 job failed by its own error:\n  chatty (j2): chatty fails after 2000 lines")

	// The chatty job is j2, as status prints it; its log, whole, for each
	// of its two attempts.
	stdout, stderr, code = gafferCmd(t, "logs", store, "j2")
	require.Equal(t, exitOK, code, stderr)
	headers := regexp.MustCompile(`(?m)^=== .* ===$`).FindAllString(stdout, -1)
	require.Len(t, headers, 2, "one header for each attempt")
	require.Regexp(t, `^=== chatty \(j2\), attempt 1 \(issue 1\.\d+\): failed: chatty fails after 2000 lines ===$`, headers[0])
	require.Regexp(t, `^=== chatty \(j2\), attempt 2 \(issue 1\.\d+\): failed: chatty fails after 2000 lines ===$`, headers[1])
	for i := range chattyLines {
		if n := strings.Count(stdout, fmt.Sprintf(" line=%d\n", i)); n != 2 {
			t.Fatalf("line %d is in the output %d times, not once for each attempt", i, n)
		}
	}
	require.Equal(t, 2, strings.Count(stdout, "the last line"))
	byNumber, _, code := gafferCmd(t, "logs", store, "2")
	require.Equal(t, exitOK, code)
	require.Equal(t, stdout, byNumber, "JOB as its number")

	stdout, _, code = gafferCmd(t, "logs", store, "j3")
	require.Equal(t, exitOK, code)
	require.Contains(t, stdout, "succeeded ===\n(no log kept)")

	stdout, stderr, code = gafferCmd(t, "why", store, "j2")
	require.Equal(t, exitOK, code, stderr)
	require.Equal(t, "chatty (j2): failed: chatty fails after 2000 lines\n", stdout)
	stdout, _, code = gafferCmd(t, "why", store)
	require.Equal(t, exitOK, code)
	require.Contains(t, stdout, "after (j6): will not run: predecessor")

	stdout, _, code = gafferCmd(t, "stats", store)
	require.Equal(t, exitOK, code)
	require.Regexp(t, `(?m)^cmdtest\.chatty\s+1\s+0\s+2\s+1\s+\S+/\S+/\S+\s+\S+/\S+/\S+\s+\d+\.\d MiB$`, stdout, "1 job, 0 succeeded, 2 failed, 1 retry, times and memory known")

	// Cancelling the failed workflow, with no leader, records it: it is
	// not restarted by a later run.
	stdout, stderr, code = gafferCmd(t, "cancel", store)
	require.Equal(t, exitOK, code, stderr)
	require.Contains(t, stdout, "the store records it as cancelled")
	stdout, _, code = gafferCmd(t, "status", store)
	require.Equal(t, exitOK, code)
	require.Equal(t, "cancelled", line1(t, stdout))
	cmd = exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envLeader+"="+store)
	out, err = cmd.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "workflow cancelled")
}

// A workflow whose leader was killed is stopped: status says so, why
// explains as a resuming leader would, a job's cancel waits for the next
// leader, and the workflow's cancel is recorded at once.
func TestStoppedWorkflow(t *testing.T) {
	if testing.Short() {
		t.Skip("runs worker processes")
	}
	fanout := build(t, "examples/fanout")
	store := filepath.Join(t.TempDir(), "S")
	// One process per job: slow enough to be killed mid-run.
	cmd := exec.Command(fanout, "-n", "2000", "-mode", "process", "-store", store)
	require.NoError(t, cmd.Start())
	require.Eventually(t, func() bool {
		s, err := gaffer.ReadLiveStatus(store + ".work")
		return err == nil && s.Counts.Live > 1000
	}, time.Minute, 50*time.Millisecond)
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()

	stdout, stderr, code := gafferCmd(t, "status", store)
	require.Equal(t, exitOK, code, stderr)
	require.Equal(t, "stopped", line1(t, stdout))
	require.Contains(t, stdout, "stopped without ending its run")

	stdout, stderr, code = gafferCmd(t, "why", store, "j2000")
	require.Equal(t, exitOK, code, stderr)
	require.Contains(t, stdout, "fanout.leaf (j2000): ")
	stdout, _, code = gafferCmd(t, "why", store, "-n", "3")
	require.Equal(t, exitOK, code)
	require.Contains(t, stdout, "stopped: no leader runs; 2002 jobs have not finished (the first 3), as a leader resuming the workflow would see them:")
	require.Contains(t, stdout, "  fanout.root (j1): body done; waiting for 2000 child subtree(s)\n")

	stdout, stderr, code = gafferCmd(t, "cancel", store, "j2000")
	require.Equal(t, exitOK, code, stderr)
	require.Contains(t, stdout, "the next leader to run the workflow cancels it")
	require.FileExists(t, filepath.Join(store+".work", "control", "cancel-2000"))

	stdout, stderr, code = gafferCmd(t, "cancel", store)
	require.Equal(t, exitOK, code, stderr)
	require.Contains(t, stdout, "the store records it as cancelled")
	stdout, _, _ = gafferCmd(t, "status", store)
	require.Equal(t, "cancelled", line1(t, stdout))
	stdout, _, code = gafferCmd(t, "cancel", store)
	require.Equal(t, exitOK, code)
	require.Equal(t, "the workflow is already cancelled\n", stdout)

	out, err := exec.Command(fanout, "-n", "2000", "-mode", "subprocess", "-store", store).CombinedOutput()
	require.Error(t, err, "a cancelled workflow is not resumed")
	require.Contains(t, string(out), "cancelled")
}

// Bad input is an error on stderr that names the store and the job;
// nothing panics, and nothing is created or removed.
func TestBadInput(t *testing.T) {
	store := smallStore(t)
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	require.NoError(t, os.WriteFile(text, []byte("not a store\n"), 0o644))
	empty := filepath.Join(dir, "empty.db")
	require.NoError(t, os.WriteFile(empty, nil, 0o644))
	missing := filepath.Join(dir, "missing.db")

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"status", missing}, missing + ": no such store"},
		{[]string{"status", dir}, dir + " is a directory, not a gaffer store"},
		{[]string{"status", store + ".work"}, "is the work directory of the store " + store + ": give the store"},
		{[]string{"stats", empty}, empty + " is empty: not a gaffer store"},
		{[]string{"why", text}, text + " is not a gaffer store"},
		{[]string{"cancel", text}, text + " is not a gaffer store"},
		{[]string{"cancel", missing}, missing + ": no such store"},
		{[]string{"clean", text}, text + " is not a gaffer store"},
		{[]string{"logs", text, "j1"}, text + " is not a gaffer store"},
		{[]string{"logs", store, "x12"}, `job "x12": want j<number>`},
		{[]string{"logs", store, "0"}, `job "0": want j<number> (as status prints it) or a number, from 1`},
		{[]string{"logs", store, "j"}, `job "j": want`},
		{[]string{"logs", store, "99999999999999999999999"}, `job "99999999999999999999999": want`},
		{[]string{"logs", store, "j6"}, store + ": no job j6: the workflow's jobs are j1 to j5"},
		{[]string{"why", store, "j1", "j77"}, store + ": no job j77"},
		{[]string{"cancel", store, "j6"}, store + ": no job j6"},
		{[]string{"cancel", store}, store + ": the workflow has succeeded: nothing to cancel"},
		{[]string{"logs", store}, "want STORE JOB, got 1 arguments"},
		{[]string{"status"}, "want one STORE, got 0 arguments"},
		{[]string{"status", "-nosuchflag", store}, "flag provided but not defined: -nosuchflag"},
		{[]string{"frobnicate", store}, `unknown command "frobnicate"`},
		{nil, "usage: gaffer COMMAND"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			stdout, stderr, code := gafferCmd(t, c.args...)
			require.Equal(t, exitError, code)
			require.Contains(t, stderr, c.want)
			require.Empty(t, stdout)
		})
	}
	require.FileExists(t, text, "a refused clean removes nothing")
	require.NoFileExists(t, missing, "nothing is created")
	require.NoDirExists(t, missing+".work")
	_, err := os.Stat(filepath.Join(store+".work", "control"))
	require.True(t, errors.Is(err, os.ErrNotExist), "refused cancels leave no request")

	// Finished jobs have nothing to cancel; that is not an error.
	stdout, stderr, code := gafferCmd(t, "logs", store, "j5")
	require.Equal(t, exitOK, code, stderr)
	require.Contains(t, stdout, "=== after (j5), attempt 1")
}

// Every command has -h, which prints its usage on stdout.
func TestHelp(t *testing.T) {
	for _, c := range commands {
		stdout, stderr, code := gafferCmd(t, c.name, "-h")
		require.Equal(t, exitOK, code)
		require.Empty(t, stderr)
		require.Contains(t, stdout, "usage: gaffer "+c.name+" [flags] "+c.args)
		require.Contains(t, stdout, "-workdir")
		help, _, _ := gafferCmd(t, "help", c.name)
		require.Equal(t, stdout, help)
	}
	stdout, _, code := gafferCmd(t, "-h")
	require.Equal(t, exitOK, code)
	for _, c := range commands {
		require.Contains(t, stdout, "  "+c.name+" "+c.args)
	}
}

// Flags may come after the store.
func TestFlagsAnywhere(t *testing.T) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "")
	pos, err := parse(fs, []string{"S", "-json", "j1", "--", "-j2"})
	require.NoError(t, err)
	require.True(t, *asJSON)
	require.Equal(t, []string{"S", "j1", "-j2"}, pos)
}

func TestParseJob(t *testing.T) {
	for in, want := range map[string]uint64{"j12": 12, "12": 12, "J7": 7, "1": 1, "j18446744073709551615": 0, "-3": 0, "j-3": 0, "": 0, "12a": 0} {
		id, err := parseJob(in)
		if want == 0 {
			require.Error(t, err, in)
			continue
		}
		require.NoError(t, err, in)
		require.EqualValues(t, want, id, in)
	}
}

// The real binary: its output and its exit statuses.
func TestBinary(t *testing.T) {
	exe := build(t, "cmd/gaffer")
	store := smallStore(t)
	out, err := exec.Command(exe, "status", store).Output()
	require.NoError(t, err)
	require.Equal(t, "succeeded", line1(t, string(out)))
	require.Contains(t, string(out), "cmdtest.root  1")

	out, err = exec.Command(exe, "stats", store).Output()
	require.NoError(t, err)
	require.Regexp(t, `(?m)^cmdtest\.leaf\s+4\s+4\s+0\s+0\s`, string(out))

	cmd := exec.Command(exe, "logs", store, "j9")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, exitError, ee.ExitCode())
	require.Empty(t, out)
	require.Equal(t, "gaffer logs: "+store+": no job j9: the workflow's jobs are j1 to j5\n", stderr.String())

	out, err = exec.Command(exe, "status", "-h").Output()
	require.NoError(t, err)
	require.Contains(t, string(out), "usage: gaffer status [flags] STORE")
}

// A store held by a process whose work directory has no marker yet (a
// leader between opening its store and marking its work directory) is
// running; it cannot be asked anything yet, nor cleaned.
func TestHeldUnmarkedStore(t *testing.T) {
	store := filepath.Join(t.TempDir(), "held.db")
	db, err := jobstore.OpenBolt(store, nil)
	require.NoError(t, err)
	defer db.Close()

	stdout, stderr, code := gafferCmd(t, "status", store)
	require.Equal(t, exitOK, code, stderr)
	require.Equal(t, "running", line1(t, stdout))
	require.Contains(t, stdout, "a process holds the store, and "+store+".work has no marker yet")
	_, stderr, code = gafferCmd(t, "cancel", store)
	require.Equal(t, exitError, code)
	require.Contains(t, stderr, "has no marker yet: if a leader is starting, try again in a second")
	_, stderr, code = gafferCmd(t, "why", store)
	require.Equal(t, exitError, code)
	require.Contains(t, stderr, "has not published a live snapshot yet")
	_, stderr, code = gafferCmd(t, "clean", store)
	require.Equal(t, exitError, code)
	require.Contains(t, stderr, "another process holds the store")
	require.FileExists(t, store)
	require.NoDirExists(t, store+".work")
}
