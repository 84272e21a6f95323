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

// small keeps each job's request tiny, so that many run at once on the
// one-node cluster (without it every job asks for 2 GiB of mem_free).
var small = []gaffer.JobOption{gaffer.Cores(0.1), gaffer.Memory("64Mi"), gaffer.Disk("1Mi")}

// Step is one child of Steps.
type Step struct {
	Sleep time.Duration `json:"sleep"`
	Value int           `json:"value"`
	Crash bool          `json:"crash,omitempty"` // the first attempt exits 3 without a result
}

// SleepMark marks its start, sleeps (stopping early if its context ends),
// marks its end and returns its value. With Crash, its first attempt
// exits the worker with status 3 after the sleep instead: a job Grid
// Engine records as exited 3, with no result in its folder.
var SleepMark = gaffer.MustRegister("ge.sleepmark", func(ctx context.Context, jc *gaffer.JobContext, s Step) (int, error) {
	mark("start", jc)
	select {
	case <-time.After(s.Sleep):
	case <-ctx.Done():
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
var Steps = gaffer.MustRegister("ge.steps", func(ctx context.Context, jc *gaffer.JobContext, steps []Step) (int, error) {
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

// Fail writes to its log and fails with an error.
var Fail = gaffer.MustRegister("ge.fail", func(ctx context.Context, jc *gaffer.JobContext, msg string) (int, error) {
	fmt.Fprintln(os.Stderr, "fail says on stderr: about to fail, attempt", jc.Attempt())
	return 0, errors.New(msg)
}, small...)

// Exit writes to stderr and exits the worker with the given status: no
// result reaches the leader, only Grid Engine's exit status and the log.
var Exit = gaffer.MustRegister("ge.exit", func(ctx context.Context, jc *gaffer.JobContext, code int) (int, error) {
	fmt.Fprintln(os.Stderr, "exit says on stderr: exiting with", code)
	os.Exit(code)
	return 0, nil
}, small...)

// FailRoot has a Fail child, an Exit child and a good child, and a sum
// follow-on, which cannot run.
var FailRoot = gaffer.MustRegister("ge.failroot", func(ctx context.Context, jc *gaffer.JobContext, msg string) (int, error) {
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

// Stubborn ignores its context and sleeps.
var Stubborn = gaffer.MustRegister("ge.stubborn", func(ctx context.Context, jc *gaffer.JobContext, d time.Duration) (int, error) {
	fmt.Fprintln(os.Stderr, "stubborn: sleeping", d)
	time.Sleep(d)
	return 0, nil
}, small...)

// Polite sleeps until its context ends. Grid Engine's h_rt ends it with
// SIGKILL, so it never gets to return.
var Polite = gaffer.MustRegister("ge.polite", func(ctx context.Context, jc *gaffer.JobContext, d time.Duration) (int, error) {
	fmt.Fprintln(os.Stderr, "polite: sleeping", d)
	select {
	case <-time.After(d):
		return 0, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("polite stopped: %w", ctx.Err())
	}
}, small...)

// TimeRoot runs one Stubborn and one Polite child under a walltime of two
// seconds (h_rt=0:00:02), without retries.
var TimeRoot = gaffer.MustRegister("ge.timeroot", func(ctx context.Context, jc *gaffer.JobContext, d time.Duration) (int, error) {
	opts := []gaffer.JobOption{gaffer.Walltime(2 * time.Second), gaffer.Retries(0)}
	jc.AddChild(Stubborn.New(d, opts...))
	jc.AddChild(Polite.New(d, opts...))
	return 0, nil
}, small...)
