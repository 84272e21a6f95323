package gaffer_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem/local"
	"github.com/gafferhq/gaffer/jobstore"
)

// runs counts the bodies run, by test and job name; failing says which
// jobs fail, and how many more times.
var runs struct {
	sync.Mutex
	n       map[string]int
	failing map[string]int // -1: always
}

func ranTimes(key string) int {
	runs.Lock()
	defer runs.Unlock()
	return runs.n[key]
}

func setFailing(key string, times int) {
	runs.Lock()
	defer runs.Unlock()
	if runs.failing == nil {
		runs.failing = map[string]int{}
	}
	runs.failing[key] = times
}

// Counted counts its runs and fails as setFailing says.
var Counted = gaffer.MustRegister("test.counted", countedBody)

func countedBody(ctx context.Context, jc *gaffer.JobContext, key string) (string, error) {
	runs.Lock()
	defer runs.Unlock()
	if runs.n == nil {
		runs.n = map[string]int{}
	}
	runs.n[key]++
	switch f := runs.failing[key]; {
	case f < 0:
		return "", fmt.Errorf("%s always fails", key)
	case f > 0:
		runs.failing[key]--
		return "", fmt.Errorf("%s fails this time", key)
	}
	return key, nil
}

// counted builds: root ─c→ a ─f→ f ─c→ g; root ─f→ z. Keys are test/name.
func counted(test string) (root *gaffer.Job[string], keys map[string]string) {
	keys = map[string]string{}
	job := func(name string) *gaffer.Job[string] {
		keys[name] = test + "/" + name
		runs.Lock()
		delete(runs.n, keys[name])
		delete(runs.failing, keys[name])
		runs.Unlock()
		return Counted.New(keys[name], gaffer.Name(name))
	}
	root = job("root")
	a, f, g, z := job("a"), job("f"), job("g"), job("z")
	root.AddChild(a)
	a.AddFollowOn(f)
	f.AddChild(g)
	root.AddFollowOn(z)
	return root, keys
}

func noRetries(c *gaffer.Config) { c.RetryCount = gaffer.NoRetries }

// Toil's first restart case: a follow-on that fails only the first time.
// The failed workflow, run again, succeeds without running again what had
// succeeded; the jobs skipped because of the failure run once.
func TestRestartRerunsWhatFailed(t *testing.T) {
	root, keys := counted("restart-flaky")
	setFailing(keys["f"], 1)
	l, store := newLeader(t, testOpts{cfg: noRetries})
	_, err := gaffer.Run(t.Context(), l, root)
	var fe *gaffer.FailedJobsError
	require.ErrorAs(t, err, &fe)
	require.Len(t, fe.Jobs, 1)
	require.Equal(t, "f", fe.Jobs[0].Name)
	require.Equal(t, 2, fe.Skipped, "g, and the root's follow-on z")
	require.NoError(t, l.Close())

	again, _ := newLeader(t, testOpts{cfg: noRetries, store: store})
	got, err := gaffer.Run(t.Context(), again, root)
	require.NoError(t, err, "the cause is gone: the workflow succeeds")
	require.Equal(t, "restart-flaky/root", got)
	for name, want := range map[string]int{"root": 1, "a": 1, "f": 2, "g": 1, "z": 1} {
		require.Equal(t, want, ranTimes(keys[name]), "bodies of %s", name)
	}
	require.Equal(t, 3, again.Stats().Attempts, "the second run issued f, g and z only")
}

// Toil's second case: a job that always fails runs again, with a fresh
// budget of tries, and fails again.
func TestRestartAlwaysFailingJobFailsAgain(t *testing.T) {
	root, keys := counted("restart-always")
	setFailing(keys["g"], -1)
	l, store := newLeader(t, testOpts{}) // one retry: two tries a run
	_, err := gaffer.Run(t.Context(), l, root)
	var fe *gaffer.FailedJobsError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, 2, ranTimes(keys["g"]))
	require.NoError(t, l.Close())

	again, _ := newLeader(t, testOpts{store: store})
	_, err = gaffer.Run(t.Context(), again, root)
	require.ErrorAs(t, err, &fe)
	require.Len(t, fe.Jobs, 1)
	require.Equal(t, "g", fe.Jobs[0].Name)
	require.Equal(t, 2, fe.Jobs[0].Tries, "a fresh budget: two tries again")
	require.Equal(t, 4, ranTimes(keys["g"]))
	for _, name := range []string{"root", "a", "f"} {
		require.Equal(t, 1, ranTimes(keys[name]), "%s is not run again", name)
	}
	require.Equal(t, 0, ranTimes(keys["z"]), "z waits for the root's children, which failed")
}

// A store holds one workflow: the same root resumes it (here: returns
// its value), another input is refused, naming both inputs.
func TestRunWithAnotherRootInputIsRefused(t *testing.T) {
	root, _ := counted("identity")
	l, store := newLeader(t, testOpts{})
	_, err := gaffer.Run(t.Context(), l, root)
	require.NoError(t, err)
	require.NoError(t, l.Close())

	other, _ := newLeader(t, testOpts{store: store})
	_, err = gaffer.Run(t.Context(), other, Counted.New("identity/another"))
	require.ErrorIs(t, err, gaffer.ErrWorkflowMismatch)
	require.ErrorContains(t, err, `input "identity/another" where the store's root has "identity/root"`)
	require.ErrorContains(t, err, "to start afresh, remove the store "+store)
	require.NoError(t, other.Close())

	same, _ := newLeader(t, testOpts{store: store})
	root2, _ := counted("identity")
	got, err := gaffer.Run(t.Context(), same, root2)
	require.NoError(t, err)
	require.Equal(t, "identity/root", got)
}

// A resumed store with jobs of a type this program does not know is
// refused before anything runs and nothing is marked failed: once the
// type is registered, the run finishes.
func TestUnregisteredTypeIsRefusedBeforeAnythingRuns(t *testing.T) {
	root, keys := counted("unregistered")
	l, store := newLeader(t, testOpts{})
	require.NoError(t, l.Start(t.Context(), root))
	id, err := l.RunOneJob(t.Context())
	require.NoError(t, err)
	require.NotZero(t, id, "the root ran; its child waits")
	require.NoError(t, l.Close())

	// As if the child's type had been renamed since.
	const renamed = "test.counted-renamed"
	renameKind(t, store, "test.counted", renamed)
	epoch := storeMeta(t, store).Epoch

	l2, _ := newLeader(t, testOpts{store: store})
	_, err = gaffer.Run[string](t.Context(), l2, nil)
	require.ErrorIs(t, err, gaffer.ErrUnknownJobType)
	require.ErrorContains(t, err, `"test.counted-renamed" (4 jobs)`)
	require.NoError(t, l2.Close())
	m := storeMeta(t, store)
	require.Equal(t, epoch, m.Epoch, "nothing was written")
	require.Equal(t, jobstore.StatusRunning, m.Status)
	require.Equal(t, 1, ranTimes(keys["root"]))

	if _, err := gaffer.Register(renamed, countedBody); err != nil {
		require.ErrorIs(t, err, gaffer.ErrJobTypeTaken) // go test -count: registered by an earlier run
	}
	l3, _ := newLeader(t, testOpts{store: store})
	got, err := gaffer.Run[string](t.Context(), l3, nil)
	require.NoError(t, err)
	require.Equal(t, "unregistered/root", got)
	require.Equal(t, 1, ranTimes(keys["root"]), "the root is not run again")
	require.Equal(t, 1, ranTimes(keys["z"]))
}

// renameKind rewrites every record of type from as to, and the store's
// count of records by type, as a program that renamed a type would see.
func renameKind(t *testing.T, store, from, to string) {
	t.Helper()
	s, err := jobstore.OpenBolt(store, nil)
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Update(t.Context(), func(tx jobstore.Tx) error {
		var recs []*jobstore.Job
		for rec, err := range tx.Jobs(jobstore.StatePending) {
			if err != nil {
				return err
			}
			if rec.Kind == from {
				recs = append(recs, rec)
			}
		}
		for _, rec := range recs {
			rec.Kind = to
			if err := tx.UpdateJob(rec); err != nil {
				return err
			}
		}
		m, err := tx.Meta()
		if err != nil {
			return err
		}
		m.Kinds[to] += len(recs)
		if m.Kinds[from] -= len(recs); m.Kinds[from] == 0 {
			delete(m.Kinds, from)
		}
		return tx.SetMeta(m)
	}))
}

func storeMeta(t *testing.T, store string) jobstore.Meta {
	t.Helper()
	s, err := jobstore.OpenBolt(store, nil)
	require.NoError(t, err)
	defer s.Close()
	var m jobstore.Meta
	require.NoError(t, s.View(t.Context(), func(tx jobstore.ReadTx) (err error) { m, err = tx.Meta(); return err }))
	return m
}

// A relative store path works with worker processes, which start in the
// work directory's job folders; the store records its absolute work
// directory.
func TestRelativeStorePathWithWorkerProcesses(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	root, _ := counted("relative")
	l, _ := newLeader(t, testOpts{mode: local.Subprocess, store: "rel.db"})
	got, err := gaffer.Run(t.Context(), l, root)
	require.NoError(t, err)
	require.Equal(t, "relative/root", got)
	require.NoError(t, l.Close())
	m := storeMeta(t, filepath.Join(dir, "rel.db"))
	require.Equal(t, filepath.Join(dir, "rel.db.work"), m.WorkDir)
}

// A request to a path no leader has used is refused, and creates nothing.
func TestRequestCancelRefusesAMistypedPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mistyped", "dir")
	err := gaffer.RequestCancelWorkflow(dir)
	require.ErrorIs(t, err, gaffer.ErrNotWorkDir)
	require.ErrorIs(t, gaffer.RequestCancel(dir, 3), gaffer.ErrNotWorkDir)
	_, statErr := os.Stat(dir)
	require.True(t, errors.Is(statErr, os.ErrNotExist), "the directory is not created")
}

// Chatty writes lines of its log (to stderr in a worker process, through
// its logger in-process) and fails.
var Chatty = gaffer.MustRegister("test.chatty", func(ctx context.Context, jc *gaffer.JobContext, lines int) (int, error) {
	for i := range lines {
		jc.Logger().Info("chatter", "line", i, "pad", strings.Repeat("x", 60))
	}
	jc.Logger().Info("the last line")
	return 0, fmt.Errorf("chatty fails after %d lines", lines)
})

// The whole log of a failed attempt, far over the 4 KiB its error keeps,
// is readable after the run, named by the attempt's record in the store;
// the record says what ran where, how long and how it ended.
func TestFailedAttemptLogAndRecordAreKept(t *testing.T) {
	for _, mode := range []local.Mode{local.Subprocess, local.Workers, local.InProcess} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			l, store := newLeader(t, testOpts{mode: mode, cfg: noRetries})
			_, err := gaffer.Run(t.Context(), l, Chatty.New(200, gaffer.Name("chatty")))
			var fe *gaffer.FailedJobsError
			require.ErrorAs(t, err, &fe)
			require.LessOrEqual(t, len(fe.Jobs[0].LogTail), 4<<10, "the error keeps a tail")
			require.NoError(t, l.Close())

			recs := attempts(t, store, fe.Jobs[0].ID)
			require.Len(t, recs, 1)
			a := recs[0]
			require.Equal(t, 1, a.N)
			require.Equal(t, "test.chatty", a.Kind)
			require.Equal(t, "chatty", a.Name)
			require.False(t, a.OK)
			require.Contains(t, a.Error, "chatty fails after 200 lines")
			require.Equal(t, "local", a.BatchSystem)
			require.NotEmpty(t, a.BatchID)
			require.Equal(t, 0.1, a.Requirements.Cores, "as issued, defaults filled in")
			require.EqualValues(t, 1<<20, a.Requirements.Memory)
			require.False(t, a.Start.IsZero())
			require.False(t, a.End.Before(a.Start))
			require.Positive(t, a.Wall)
			if mode != local.InProcess {
				require.Equal(t, 1, a.ExitCode)
				require.Positive(t, a.CPU, "a worker process reports its CPU time")
				require.Positive(t, a.MaxRSS)
				require.NotEmpty(t, a.Node)
			}
			require.NotEmpty(t, a.Log)
			b, err := os.ReadFile(a.Log)
			require.NoError(t, err)
			require.Greater(t, len(b), 12<<10, "the whole log")
			require.Contains(t, string(b), "line=0 ")
			require.Contains(t, string(b), "the last line")
		})
	}
}

// A log over Config.LogLimit keeps its end, after a line saying so;
// successful attempts keep theirs only when asked.
func TestKeptLogIsCapped(t *testing.T) {
	for _, mode := range workerModes {
		t.Run(mode.String(), func(t *testing.T) {
			l, store := newLeader(t, testOpts{mode: mode, cfg: func(c *gaffer.Config) {
				c.RetryCount, c.LogLimit = gaffer.NoRetries, 2000
			}})
			_, err := gaffer.Run(t.Context(), l, Chatty.New(200))
			var fe *gaffer.FailedJobsError
			require.ErrorAs(t, err, &fe)
			require.NoError(t, l.Close())
			a := attempts(t, store, fe.Jobs[0].ID)[0]
			b, err := os.ReadFile(a.Log)
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(string(b), "[gaffer: the first "), "%.80s", b)
			require.Contains(t, string(b), "were cut; Config.LogLimit keeps the last 2000]\n")
			require.Contains(t, string(b), "the last line")
			require.Less(t, len(b), 2200)
		})
	}
}

// Every attempt of a run is recorded, with its job's predecessors.
func TestEveryAttemptIsRecorded(t *testing.T) {
	root, keys := counted("records")
	setFailing(keys["g"], 1)
	l, store := newLeader(t, testOpts{})
	_, err := gaffer.Run(t.Context(), l, root)
	require.NoError(t, err)
	require.NoError(t, l.Close())
	recs := attempts(t, store, 0)
	byName := map[string][]jobstore.Attempt{}
	for _, a := range recs {
		byName[a.Name] = append(byName[a.Name], a)
	}
	require.Len(t, recs, 6, "five jobs, g twice")
	require.Len(t, byName["g"], 2)
	require.False(t, byName["g"][0].OK)
	require.True(t, byName["g"][1].OK)
	require.Equal(t, 2, byName["g"][1].N)
	require.Empty(t, byName["g"][1].Log, "successful attempts keep no log unless asked")
	require.Equal(t, []jobstore.JobID{byName["f"][0].Job}, byName["g"][0].Preds)
	require.Empty(t, byName["root"][0].Preds)
}

// attempts reads the attempt records of job (0: all) from a store no
// leader holds.
func attempts(t *testing.T, store string, job jobstore.JobID) []jobstore.Attempt {
	t.Helper()
	s, err := jobstore.OpenBolt(store, &jobstore.BoltOptions{ReadOnly: true})
	require.NoError(t, err)
	defer s.Close()
	var out []jobstore.Attempt
	require.NoError(t, s.View(t.Context(), func(tx jobstore.ReadTx) error {
		for a, err := range tx.Attempts(job) {
			if err != nil {
				return err
			}
			out = append(out, *a)
		}
		return nil
	}))
	return out
}
