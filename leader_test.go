package gaffer_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/jobstore"
)

type stepIn struct {
	Test string
	Name string
}

// Step records that it ran and returns its name.
var Step = gaffer.MustRegister("test.step", func(ctx context.Context, jc *gaffer.JobContext, in stepIn) (string, error) {
	record(in.Test, in.Name)
	return in.Name, nil
})

func step(test, name string) *gaffer.Job[string] {
	return Step.New(stepIn{test, name}, gaffer.Name(name))
}

// Children run after their parent's body; follow-ons after the parent's
// whole subtree; a join runs once, after all its predecessors.
func TestOrderingOfChildrenFollowOnsAndJoins(t *testing.T) {
	const test = "ordering"
	resetTrace(test)
	l, _ := newLeader(t, testOpts{})
	root := step(test, "root")
	a, b := step(test, "a"), step(test, "b")
	a1, b2 := step(test, "a1"), step(test, "b2")
	join := step(test, "join")
	f := step(test, "f")
	root.AddChild(a)
	root.AddChild(b)
	root.AddFollowOn(f)
	a.AddChild(a1)
	b.AddFollowOn(b2)
	a1.AddChild(join)
	b2.AddChild(join)

	got, err := gaffer.Run(t.Context(), l, root)
	require.NoError(t, err)
	require.Equal(t, "root", got)

	s := steps(test)
	require.Len(t, s, 7, "every job ran exactly once: %v", s)
	at := func(x string) int { return indexOf(t, s, x) }
	require.Less(t, at("root"), at("a"))
	require.Less(t, at("root"), at("b"))
	require.Less(t, at("a"), at("a1"))
	require.Less(t, at("b"), at("b2"))
	require.Less(t, at("a1"), at("join"))
	require.Less(t, at("b2"), at("join"))
	for _, x := range []string{"a", "b", "a1", "b2", "join"} {
		require.Less(t, at(x), at("f"), "the follow-on waits for the whole subtree, including %s", x)
	}
}

type dynIn struct {
	Test  string
	Depth int
}

// Tree adds two children and a follow-on while it runs, to a depth, and
// returns the number of jobs in its subtree (through its follow-on). A job
// type that makes jobs of its own type is registered in init: a package
// variable cannot refer to itself.
var Tree *gaffer.JobType[dynIn, int]

func init() { Tree = gaffer.MustRegister("test.tree", tree) }

func tree(ctx context.Context, jc *gaffer.JobContext, in dynIn) (int, error) {
	record(in.Test, fmt.Sprintf("tree%d-%d", in.Depth, jc.ID()))
	if in.Depth == 0 {
		return 1, nil
	}
	l, r := Tree.New(dynIn{in.Test, in.Depth - 1}), Tree.New(dynIn{in.Test, in.Depth - 1})
	jc.AddChild(l)
	jc.AddChild(r)
	total := Add.NewFrom(gaffer.Collect[int](l.Result(), r.Result(), gaffer.Value(1)))
	jc.AddFollowOn(total)
	return gaffer.Forward(jc, total.Result())
}

// Add sums its inputs.
var Add = gaffer.MustRegister("test.add", func(ctx context.Context, jc *gaffer.JobContext, xs []int) (int, error) {
	s := 0
	for _, x := range xs {
		s += x
	}
	return s, nil
})

func TestDynamicChildrenAndForwardedPromises(t *testing.T) {
	resetTrace("dyn")
	l, _ := newLeader(t, testOpts{})
	n, err := gaffer.Run(t.Context(), l, Tree.New(dynIn{"dyn", 5}))
	require.NoError(t, err)
	require.Equal(t, 63, n, "a depth-5 binary tree has 63 nodes")
	require.Len(t, steps("dyn"), 63)
}

type rich struct {
	A int               `json:"a"`
	B []string          `json:"b"`
	M map[string]string `json:"m"`
}

// Make returns a struct; Use reads parts of it through promises.
var Make = gaffer.MustRegister("test.make", func(ctx context.Context, jc *gaffer.JobContext, _ struct{}) (rich, error) {
	return rich{A: 7, B: []string{"x", "y"}, M: map[string]string{"k": "v"}}, nil
})

type useIn struct {
	A    gaffer.Promise[int]
	B1   gaffer.Promise[string]
	K    gaffer.Promise[string]
	Note string
}

var Use = gaffer.MustRegister("test.use", func(ctx context.Context, jc *gaffer.JobContext, in useIn) (string, error) {
	a, err := in.A.Get()
	if err != nil {
		return "", err
	}
	b, _ := in.B1.Get()
	k, _ := in.K.Get()
	return fmt.Sprintf("%s:%d:%s:%s", in.Note, a, b, k), nil
})

var MakeAndUse = gaffer.MustRegister("test.makeanduse", func(ctx context.Context, jc *gaffer.JobContext, _ struct{}) (string, error) {
	m := Make.New(struct{}{})
	p := m.Result()
	u := Use.New(useIn{
		A:    gaffer.Field[int](p, "a"),
		B1:   gaffer.Index(gaffer.Field[[]string](p, "b"), 1),
		K:    gaffer.Key(gaffer.Field[map[string]string](p, "m"), "k"),
		Note: "n",
	})
	jc.AddChild(m)
	m.AddChild(u)
	return gaffer.Forward(jc, u.Result())
})

func TestPromisesOfPartsOfAResult(t *testing.T) {
	l, _ := newLeader(t, testOpts{})
	got, err := gaffer.Run(t.Context(), l, MakeAndUse.New(struct{}{}))
	require.NoError(t, err)
	require.Equal(t, "n:7:y:v", got)
}

// Early reads a promise of a job that runs after it.
var Early = gaffer.MustRegister("test.early", func(ctx context.Context, jc *gaffer.JobContext, _ struct{}) (int, error) {
	late := Add.New([]int{1})
	reader := Add.NewFrom(gaffer.Collect[int](late.Result()), gaffer.Name("reader"))
	jc.AddChild(reader)
	jc.AddFollowOn(late)
	return 0, nil
})

func TestPromiseOfALaterJobIsAClearError(t *testing.T) {
	l, _ := newLeader(t, testOpts{})
	_, err := gaffer.Run(t.Context(), l, Early.New(struct{}{}))
	require.ErrorIs(t, err, gaffer.ErrJobsFailed)
	var fe *gaffer.FailedJobsError
	require.ErrorAs(t, err, &fe)
	require.Len(t, fe.Jobs, 1)
	require.Equal(t, "reader", fe.Jobs[0].Name)
	require.Equal(t, 1, fe.Jobs[0].Tries, "no retries for an error retrying cannot fix")
	require.Contains(t, fe.Jobs[0].Err, "promise not fulfilled")
	require.Contains(t, fe.Jobs[0].Err, "has not finished")
}

var flakyRuns atomic.Int32

// Flaky fails on its first attempt.
var Flaky = gaffer.MustRegister("test.flaky", func(ctx context.Context, jc *gaffer.JobContext, _ struct{}) (int, error) {
	flakyRuns.Add(1)
	if jc.Attempt() == 1 {
		return 0, errors.New("first try fails")
	}
	return jc.Attempt(), nil
})

func TestFailedJobIsRetried(t *testing.T) {
	l, _ := newLeader(t, testOpts{})
	flakyRuns.Store(0)
	got, err := gaffer.Run(t.Context(), l, Flaky.New(struct{}{}))
	require.NoError(t, err)
	require.Equal(t, 2, got, "the retry is attempt 2")
	require.Equal(t, int32(2), flakyRuns.Load())
	require.Equal(t, 1, l.Stats().Failures)
}

// Broken always fails, after logging a line.
var Broken = gaffer.MustRegister("test.broken", func(ctx context.Context, jc *gaffer.JobContext, why string) (int, error) {
	jc.Logger().Info("about to fail", "why", why)
	return 0, errors.New("broken: " + why)
})

var FailTree = gaffer.MustRegister("test.failtree", func(ctx context.Context, jc *gaffer.JobContext, _ struct{}) (int, error) {
	bad1 := Broken.New("one", gaffer.Name("bad1"))
	bad2 := Broken.New("two", gaffer.Name("bad2"), gaffer.Retries(2))
	jc.AddChild(bad1)
	jc.AddChild(bad2)
	bad1.AddChild(step("failtree", "under-bad1"))
	jc.AddChild(step("failtree", "sibling"))
	jc.AddFollowOn(step("failtree", "after"))
	return 1, nil
})

func TestTotalFailureNamesEveryFailedJob(t *testing.T) {
	resetTrace("failtree")
	l, store := newLeader(t, testOpts{})
	_, err := gaffer.Run(t.Context(), l, FailTree.New(struct{}{}))
	require.ErrorIs(t, err, gaffer.ErrJobsFailed)
	var fe *gaffer.FailedJobsError
	require.ErrorAs(t, err, &fe)
	require.Len(t, fe.Jobs, 2)
	require.Equal(t, "bad1", fe.Jobs[0].Name)
	require.Equal(t, 2, fe.Jobs[0].Tries, "default: one retry")
	require.Equal(t, "broken: one", fe.Jobs[0].Err)
	require.Contains(t, fe.Jobs[0].LogTail, "about to fail")
	require.Equal(t, "bad2", fe.Jobs[1].Name)
	require.Equal(t, 3, fe.Jobs[1].Tries, "Retries(2) gives three attempts")
	require.Equal(t, 2, fe.Skipped, "the failed job's child and the root's follow-on never run")
	require.Equal(t, []string{"sibling"}, steps("failtree"), "other branches still run")
	msg := err.Error()
	for _, want := range []string{"2 job(s) failed", "bad1", "bad2", "broken: two", "| ", "about to fail"} {
		require.Contains(t, msg, want)
	}

	// Running the failed workflow again reports the same failure at once.
	require.NoError(t, l.Close())
	l2, _ := newLeader(t, testOpts{store: store})
	_, err = l2.Run(t.Context(), nil)
	require.ErrorAs(t, err, &fe)
	require.Len(t, fe.Jobs, 2)
	require.Equal(t, []string{"sibling"}, steps("failtree"), "nothing ran again")
}

func TestInvalidGraphsAreRefusedAndLoseNothing(t *testing.T) {
	cases := map[string]struct {
		build func() gaffer.Node
		want  []string
	}{
		"self edge": {func() gaffer.Node {
			r := step("g", "r")
			r.AddChild(r)
			return r
		}, []string{"its own successor", "r (new"}},
		"duplicate edge": {func() gaffer.Node {
			r, a := step("g", "r"), step("g", "a")
			r.AddChild(a)
			r.AddFollowOn(a)
			return r
		}, []string{"added twice", "a (new"}},
		"cycle": {func() gaffer.Node {
			r, a, b := step("g", "r"), step("g", "a"), step("g", "b")
			r.AddChild(a)
			a.AddChild(b)
			b.AddFollowOn(a)
			return r
		}, []string{"cycle", "a (new", "b (new"}},
		"follow-on that must wait for itself": {func() gaffer.Node {
			r, a, f := step("g", "r"), step("g", "a"), step("g", "f")
			r.AddChild(a)
			r.AddFollowOn(f)
			f.AddChild(a) // a must end before f starts, and start after f
			return r
		}, []string{"cycle", "a (new", "f (new"}},
		"two roots": {func() gaffer.Node {
			r, a, other := step("g", "r"), step("g", "a"), step("g", "other")
			r.AddChild(a)
			other.AddChild(a)
			return r
		}, []string{"more than one root", "other (new"}},
		"bad requirement": {func() gaffer.Node {
			return Step.New(stepIn{"g", "x"}, gaffer.Memory("lots"))
		}, []string{"memory", "lots"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			l, store := newLeader(t, testOpts{})
			_, err := l.Run(t.Context(), c.build())
			require.Error(t, err)
			for _, w := range c.want {
				require.Contains(t, err.Error(), w)
			}
			require.NoError(t, l.Close())
			// Nothing was stored: the same store takes a good workflow.
			l2, _ := newLeader(t, testOpts{store: store})
			got, err := gaffer.Run(t.Context(), l2, step("g2", "fine"))
			require.NoError(t, err)
			require.Equal(t, "fine", got)
		})
	}
}

var captured atomic.Pointer[gaffer.Job[string]]

// Reuse adds a job that an earlier job already submitted.
var Reuse = gaffer.MustRegister("test.reuse", func(ctx context.Context, jc *gaffer.JobContext, _ struct{}) (int, error) {
	jc.AddFollowOn(captured.Load())
	return 0, nil
})

func TestRunningJobCannotReuseASubmittedJob(t *testing.T) {
	l, _ := newLeader(t, testOpts{})
	root := step("reuse", "root")
	captured.Store(root)
	reuser := Reuse.New(struct{}{}, gaffer.Name("reuser"))
	root.AddChild(reuser)
	_, err := l.Run(t.Context(), root)
	var fe *gaffer.FailedJobsError
	require.ErrorAs(t, err, &fe)
	require.Len(t, fe.Jobs, 1)
	require.Equal(t, "reuser", fe.Jobs[0].Name)
	require.Contains(t, fe.Jobs[0].Err, "already submitted")
}

func TestRequirementBeyondTheMachineIsAClearError(t *testing.T) {
	l, _ := newLeader(t, testOpts{})
	_, err := l.Run(t.Context(), Step.New(stepIn{"big", "big"}, gaffer.Name("huge"), gaffer.Cores(64)))
	var fe *gaffer.FailedJobsError
	require.ErrorAs(t, err, &fe)
	require.Len(t, fe.Jobs, 1)
	require.Equal(t, 1, fe.Jobs[0].Tries)
	require.Contains(t, fe.Jobs[0].Err, "huge")
	require.Contains(t, fe.Jobs[0].Err, "64 cores")
}

// A store holding jobs this program cannot run (written by another
// program, or by an older version) fails those jobs clearly.
func TestUnknownTypeAndUndecodableInputFailClearly(t *testing.T) {
	for name, c := range map[string]struct {
		kind, input, want string
	}{
		"unknown type":      {"test.nosuchtype", `1`, `unknown job type: job nosuchtype-job (j1) has type "test.nosuchtype"`},
		"undecodable input": {"test.add", `"not a list"`, `bad job input: job nosuchtype-job (j1): decoding input as []int`},
	} {
		t.Run(name, func(t *testing.T) {
			l, store := newLeader(t, testOpts{})
			require.NoError(t, l.Close())
			s, err := jobstore.OpenBolt(store, nil)
			require.NoError(t, err)
			require.NoError(t, s.Update(t.Context(), func(tx jobstore.Tx) error {
				id, _ := tx.AllocIDs(1)
				m, _ := tx.Meta()
				m.Root, m.Status = id, jobstore.StatusRunning
				require.NoError(t, tx.SetMeta(m))
				return tx.CreateJob(&jobstore.Job{ID: id, Kind: c.kind, Name: "nosuchtype-job", State: jobstore.StatePending, Retries: -1}, []byte(c.input))
			}))
			require.NoError(t, s.Close())
			l2, _ := newLeader(t, testOpts{store: store})
			_, err = l2.Run(t.Context(), nil)
			var fe *gaffer.FailedJobsError
			require.ErrorAs(t, err, &fe)
			require.Len(t, fe.Jobs, 1)
			require.Equal(t, 1, fe.Jobs[0].Tries, "not retried")
			require.Contains(t, fe.Jobs[0].Err, c.want)
		})
	}
}

func TestForeignStoreIsRefused(t *testing.T) {
	path := t.TempDir() + "/notes.db"
	require.NoError(t, writeFile(path, strings.Repeat("hello\n", 2000)))
	_, err := gaffer.NewLeader(gaffer.Config{Store: path})
	require.ErrorIs(t, err, jobstore.ErrForeign)
	require.Contains(t, err.Error(), path)
}
