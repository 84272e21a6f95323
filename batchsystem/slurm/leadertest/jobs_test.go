package leadertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/examples/fanout/fanout"
)

// small keeps Slurm's accounting of a job tiny, so that many run at once
// on the one-node cluster (without it every job asks for 2 GiB).
var small = []gaffer.JobOption{gaffer.Cores(0.1), gaffer.Memory("64Mi"), gaffer.Disk("1Mi")}

// Step is one child of Steps.
type Step struct {
	Sleep time.Duration `json:"sleep"`
	Value int           `json:"value"`
	Crash bool          `json:"crash,omitempty"` // the first attempt exits 3 without a result
	// Stubborn sleeps through a cancel: scancel's SIGTERM does not stop
	// it, KillWait later SIGKILL does, and no result is written.
	Stubborn bool `json:"stubborn,omitempty"`
}

// SleepMark marks its start, sleeps (stopping early if the job is
// cancelled), marks its end and returns its value. With Crash, its first
// attempt exits the worker with status 3 after the sleep instead: a job
// Slurm reports FAILED, with no result in its folder.
var SleepMark = gaffer.MustRegister("lt.sleepmark", func(ctx context.Context, jc *gaffer.JobContext, s Step) (int, error) {
	mark("start", jc)
	if s.Stubborn {
		time.Sleep(s.Sleep)
	}
	select {
	case <-time.After(s.Sleep):
	case <-ctx.Done():
		mark("cancelled", jc)
		return 0, ctx.Err()
	}
	if s.Crash && jc.Attempt() == 1 {
		mark("crash", jc)
		os.Exit(3)
	}
	mark("end", jc)
	return s.Value, nil
}, small...)

// Steps runs one SleepMark child per step, then sums their values.
var Steps = gaffer.MustRegister("lt.steps", func(ctx context.Context, jc *gaffer.JobContext, steps []Step) (int, error) {
	parts := make([]gaffer.Input[int], len(steps))
	for i, s := range steps {
		c := SleepMark.New(s)
		jc.AddChild(c)
		parts[i] = c.Result()
	}
	sum := fanout.Sum.NewFrom(gaffer.Collect(parts...), small...)
	jc.AddFollowOn(sum)
	return gaffer.Forward(jc, sum.Result())
}, small...)

func sumOf(steps []Step) int {
	n := 0
	for _, s := range steps {
		n += s.Value
	}
	return n
}

// Chain(n) runs n more jobs one after another: each adds the next as its
// child and forwards its value. One hop is one Slurm job, from submission
// to the leader having its result.
var Chain *gaffer.JobType[int, int]

func init() {
	Chain = gaffer.MustRegister("lt.chain", func(ctx context.Context, jc *gaffer.JobContext, n int) (int, error) {
		if n <= 1 {
			return 0, nil
		}
		next := Chain.New(n - 1)
		jc.AddChild(next)
		return gaffer.Forward(jc, next.Result())
	}, small...)
}

// Fail logs a line to its log and fails with an error.
var Fail = gaffer.MustRegister("lt.fail", func(ctx context.Context, jc *gaffer.JobContext, msg string) (int, error) {
	fmt.Fprintln(os.Stderr, "fail says on stderr: about to fail, attempt", jc.Attempt())
	jc.Logger().Info("fail logs through its logger")
	return 0, errors.New(msg)
}, small...)

// Exit writes to stderr and exits the worker with status 7: no result
// reaches the leader, only Slurm's exit status and the log.
var Exit = gaffer.MustRegister("lt.exit", func(ctx context.Context, jc *gaffer.JobContext, code int) (int, error) {
	fmt.Fprintln(os.Stderr, "exit says on stderr: exiting with", code)
	os.Exit(code)
	return 0, nil
}, small...)

// FailRoot has a Fail child, an Exit child and a good child, and a sum
// follow-on, which cannot run.
var FailRoot = gaffer.MustRegister("lt.failroot", func(ctx context.Context, jc *gaffer.JobContext, msg string) (int, error) {
	f := Fail.New(msg, gaffer.Name("the-failer"))
	x := Exit.New(7, gaffer.Name("the-exiter"), gaffer.Retries(0))
	ok := fanout.Leaf.New(5)
	jc.AddChild(f)
	jc.AddChild(x)
	jc.AddChild(ok)
	sum := fanout.Sum.NewFrom(gaffer.Collect[int](f.Result(), x.Result(), ok.Result()), small...)
	jc.AddFollowOn(sum)
	return gaffer.Forward(jc, sum.Result())
}, small...)

// Stubborn ignores its context and sleeps: Slurm's time limit ends it
// with SIGTERM (which the worker catches) and, KillWait later, SIGKILL.
var Stubborn = gaffer.MustRegister("lt.stubborn", func(ctx context.Context, jc *gaffer.JobContext, d time.Duration) (int, error) {
	fmt.Fprintln(os.Stderr, "stubborn: sleeping", d)
	time.Sleep(d)
	return 0, nil
}, small...)

// Polite sleeps until its context ends, and returns the context's error:
// the worker writes a failed result when Slurm's time limit sends SIGTERM.
var Polite = gaffer.MustRegister("lt.polite", func(ctx context.Context, jc *gaffer.JobContext, d time.Duration) (int, error) {
	fmt.Fprintln(os.Stderr, "polite: sleeping", d)
	select {
	case <-time.After(d):
		return 0, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("polite stopped: %w", ctx.Err())
	}
}, small...)

// TimeRoot runs one Stubborn and one Polite child under a walltime of
// one second (which Slurm rounds up to a minute), without retries.
var TimeRoot = gaffer.MustRegister("lt.timeroot", func(ctx context.Context, jc *gaffer.JobContext, d time.Duration) (int, error) {
	opts := []gaffer.JobOption{gaffer.Walltime(time.Second), gaffer.Retries(0)}
	s := Stubborn.New(d, opts...)
	p := Polite.New(d, opts...)
	jc.AddChild(s)
	jc.AddChild(p)
	return 0, nil
}, small...)
