package services_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/services"
)

// fast keeps every test well under a second: polls every few
// milliseconds, and no Stop waits for the 30 s default.
var fast = services.Options{PollInterval: 2 * time.Millisecond, StopTimeout: time.Second}

// runResult is what a Run started in the background returned.
type runResult struct{ err error }

// goRun starts Run in a goroutine and returns the channel its result
// arrives on.
func goRun[Out any](ctx context.Context, s services.Service[Out], started func(Out) error, stop <-chan struct{}, opts services.Options) <-chan runResult {
	done := make(chan runResult, 1)
	go func() { done <- runResult{services.Run(ctx, s, started, stop, opts)} }()
	return done
}

// wait returns Run's result or fails the test if Run has not returned
// in a generous time.
func wait(t *testing.T, done <-chan runResult) error {
	t.Helper()
	select {
	case r := <-done:
		return r.err
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

// receive fails the test if ch gives nothing in a generous time.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// bare is a Service that is not a Checker.
type bare struct {
	out   string
	stops atomic.Int32
}

func (b *bare) Start(context.Context) (string, error) { return b.out, nil }
func (b *bare) Stop(context.Context) error            { b.stops.Add(1); return nil }

func TestRunStartErrorStillStops(t *testing.T) {
	startErr := errors.New("port in use")
	var starteds, stops, checks atomic.Int32
	s := services.Funcs[string]{
		StartFunc: func(context.Context) (string, error) { return "", startErr },
		StopFunc:  func(context.Context) error { stops.Add(1); return nil },
		CheckFunc: func(context.Context) error { checks.Add(1); return nil },
	}
	err := services.Run(context.Background(), s, func(string) error { starteds.Add(1); return nil }, nil, fast)

	require.Error(t, err)
	assert.ErrorIs(t, err, startErr)
	assert.NotErrorIs(t, err, services.ErrEndedEarly)
	assert.Zero(t, starteds.Load(), "started called although Start failed")
	assert.EqualValues(t, 1, stops.Load(), "Stop must run once even when Start failed")
	assert.Zero(t, checks.Load(), "a service that never started was checked")
}

func TestRunHappyPath(t *testing.T) {
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, "host")

	var (
		mu     sync.Mutex
		events []string
	)
	record := func(e string) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e)
	}
	startedWith := make(chan string, 1)
	checked := make(chan struct{}, 100)
	var stops atomic.Int32
	s := services.Funcs[string]{
		StartFunc: func(ctx context.Context) (string, error) {
			assert.Equal(t, "host", ctx.Value(key{}), "Start does not get the caller's context")
			record("start")
			return "db:5432", nil
		},
		StopFunc: func(context.Context) error {
			stops.Add(1)
			record("stop")
			return nil
		},
		CheckFunc: func(context.Context) error {
			select {
			case checked <- struct{}{}:
			default:
			}
			return nil
		},
	}
	stop := make(chan struct{})
	done := goRun(ctx, s, func(v string) error {
		record("started")
		startedWith <- v
		return nil
	}, stop, fast)

	assert.Equal(t, "db:5432", receive(t, startedWith, "started"))
	// Several polls go by: Run is still running and has not stopped the
	// service, because nobody closed stop.
	for i := 0; i < 3; i++ {
		receive(t, checked, "a check")
	}
	select {
	case r := <-done:
		t.Fatalf("Run returned %v before stop was closed", r.err)
	default:
	}
	assert.Zero(t, stops.Load(), "Stop called before stop was closed")

	close(stop)
	require.NoError(t, wait(t, done))
	assert.EqualValues(t, 1, stops.Load())
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"start", "started", "stop"}, events)
}

func TestRunStopChannelAlreadyClosed(t *testing.T) {
	stop := make(chan struct{})
	close(stop)
	b := &bare{out: "x"}
	var got string
	err := services.Run(context.Background(), b, func(v string) error { got = v; return nil }, stop, fast)
	require.NoError(t, err)
	assert.Equal(t, "x", got)
	assert.EqualValues(t, 1, b.stops.Load())
}

func TestRunStopRequested(t *testing.T) {
	var polls atomic.Int32
	opts := services.Options{
		PollInterval: 5 * time.Millisecond,
		StopRequested: func() bool {
			return polls.Add(1) >= 3
		},
	}
	// A service that is not a Checker, and no stop channel at all: only
	// StopRequested can end it.
	b := &bare{out: "x"}
	done := goRun(context.Background(), services.Service[string](b), func(string) error { return nil }, nil, opts)

	require.NoError(t, wait(t, done))
	assert.EqualValues(t, 3, polls.Load(), "StopRequested polled again after it said true")
	assert.EqualValues(t, 1, b.stops.Load())
}

func TestRunStopRequestedFalseKeepsRunning(t *testing.T) {
	polled := make(chan struct{}, 100)
	opts := fast
	opts.StopRequested = func() bool {
		select {
		case polled <- struct{}{}:
		default:
		}
		return false
	}
	b := &bare{out: "x"}
	stop := make(chan struct{})
	done := goRun(context.Background(), services.Service[string](b), func(string) error { return nil }, stop, opts)
	for i := 0; i < 3; i++ {
		receive(t, polled, "a StopRequested poll")
	}
	select {
	case r := <-done:
		t.Fatalf("Run returned %v although StopRequested said false", r.err)
	default:
	}
	close(stop)
	require.NoError(t, wait(t, done))
	assert.EqualValues(t, 1, b.stops.Load())
}

func TestRunCheckFails(t *testing.T) {
	checkErr := errors.New("server gone")
	var checks, stops atomic.Int32
	s := services.Funcs[string]{
		StartFunc: func(context.Context) (string, error) { return "x", nil },
		StopFunc:  func(context.Context) error { stops.Add(1); return nil },
		CheckFunc: func(context.Context) error {
			if checks.Add(1) < 3 {
				return nil
			}
			return checkErr
		},
	}
	// stop is never closed: the failing check alone must end Run.
	done := goRun(context.Background(), services.Service[string](s), func(string) error { return nil }, make(chan struct{}), fast)

	err := wait(t, done)
	require.Error(t, err)
	assert.ErrorIs(t, err, services.ErrEndedEarly)
	assert.ErrorIs(t, err, checkErr)
	assert.EqualValues(t, 3, checks.Load(), "checked again after a check failed")
	assert.EqualValues(t, 1, stops.Load())
}

func TestRunContextCancelled(t *testing.T) {
	type key struct{}
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "host"))
	defer cancel()

	type stopSeen struct {
		err         error
		value       any
		hasDeadline bool
	}
	seen := make(chan stopSeen, 2)
	s := services.Funcs[string]{
		StartFunc: func(context.Context) (string, error) { return "x", nil },
		StopFunc: func(sctx context.Context) error {
			_, ok := sctx.Deadline()
			seen <- stopSeen{err: sctx.Err(), value: sctx.Value(key{}), hasDeadline: ok}
			return nil // a clean Stop does not make a killed service a success
		},
	}
	started := make(chan struct{})
	done := goRun(ctx, services.Service[string](s), func(string) error { close(started); return nil }, make(chan struct{}), fast)

	receive(t, started, "started")
	cancel()
	err := wait(t, done)

	require.Error(t, err)
	assert.ErrorIs(t, err, context.Canceled)
	assert.NotErrorIs(t, err, services.ErrEndedEarly)
	require.Len(t, seen, 1, "Stop must be called exactly once")
	got := <-seen
	assert.NoError(t, got.err, "Stop's context was already cancelled when Stop ran")
	assert.True(t, got.hasDeadline, "Stop's context must end at the stop timeout")
	assert.Equal(t, "host", got.value, "Stop's context lost the caller's values")
}

func TestRunContextCancelledDuringCheck(t *testing.T) {
	// A check that fails because the host was killed is a kill, not a
	// service that ended early.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stops atomic.Int32
	s := services.Funcs[string]{
		StartFunc: func(context.Context) (string, error) { return "x", nil },
		StopFunc:  func(context.Context) error { stops.Add(1); return nil },
		CheckFunc: func(cctx context.Context) error {
			cancel()
			<-cctx.Done()
			return cctx.Err()
		},
	}
	err := wait(t, goRun(ctx, services.Service[string](s), func(string) error { return nil }, make(chan struct{}), fast))
	assert.ErrorIs(t, err, context.Canceled)
	assert.NotErrorIs(t, err, services.ErrEndedEarly)
	assert.EqualValues(t, 1, stops.Load())
}

func TestRunStopErrorAfterCleanStop(t *testing.T) {
	stopErr := errors.New("could not flush")
	var stops atomic.Int32
	s := services.Funcs[string]{
		StartFunc: func(context.Context) (string, error) { return "x", nil },
		StopFunc:  func(context.Context) error { stops.Add(1); return stopErr },
	}
	started := make(chan struct{})
	stop := make(chan struct{})
	done := goRun(context.Background(), services.Service[string](s), func(string) error { close(started); return nil }, stop, fast)
	receive(t, started, "started")
	close(stop)

	err := wait(t, done)
	require.Error(t, err)
	assert.ErrorIs(t, err, stopErr)
	assert.EqualValues(t, 1, stops.Load())
}

func TestRunStopErrorJoinedToStartError(t *testing.T) {
	startErr := errors.New("start failed")
	stopErr := errors.New("stop failed")
	s := services.Funcs[string]{
		StartFunc: func(context.Context) (string, error) { return "", startErr },
		StopFunc:  func(context.Context) error { return stopErr },
	}
	err := services.Run(context.Background(), s, func(string) error { return nil }, nil, fast)
	assert.ErrorIs(t, err, startErr)
	assert.ErrorIs(t, err, stopErr)
}

func TestRunStartedError(t *testing.T) {
	reportErr := errors.New("cannot write the promise")
	var stops, checks atomic.Int32
	s := services.Funcs[string]{
		StartFunc: func(context.Context) (string, error) { return "x", nil },
		StopFunc:  func(context.Context) error { stops.Add(1); return nil },
		CheckFunc: func(context.Context) error { checks.Add(1); return nil },
	}
	// stop is never closed: the error from started alone must end Run.
	err := wait(t, goRun(context.Background(), services.Service[string](s), func(string) error { return reportErr }, make(chan struct{}), fast))

	require.Error(t, err)
	assert.ErrorIs(t, err, reportErr)
	assert.NotErrorIs(t, err, services.ErrEndedEarly)
	assert.EqualValues(t, 1, stops.Load())
	assert.Zero(t, checks.Load(), "checked a service whose start could not be reported")
}

func TestRunStopTimeoutBoundsStop(t *testing.T) {
	const timeout = 20 * time.Millisecond
	var deadline time.Time
	var hasDeadline bool
	s := services.Funcs[string]{
		StartFunc: func(context.Context) (string, error) { return "x", nil },
		StopFunc: func(sctx context.Context) error {
			deadline, hasDeadline = sctx.Deadline()
			// A Stop that hangs ends at the stop timeout (the fallback
			// only keeps a broken Run from hanging the test).
			select {
			case <-sctx.Done():
				return sctx.Err()
			case <-time.After(5 * time.Second):
				return errors.New("Stop's context did not end at the stop timeout")
			}
		},
	}
	stop := make(chan struct{})
	close(stop)
	before := time.Now()
	err := services.Run(context.Background(), s, func(string) error { return nil }, stop,
		services.Options{PollInterval: fast.PollInterval, StopTimeout: timeout})
	after := time.Now()

	require.True(t, hasDeadline, "Stop's context has no deadline")
	assert.False(t, deadline.Before(before.Add(timeout)), "Stop's deadline %v is before Run began + StopTimeout", deadline)
	assert.False(t, deadline.After(after.Add(timeout)), "Stop's deadline %v is after Run ended + StopTimeout", deadline)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "a Stop that timed out is an error")
}

func TestRunDefaultStopTimeout(t *testing.T) {
	var deadline time.Time
	var hasDeadline bool
	s := services.Funcs[string]{
		StartFunc: func(context.Context) (string, error) { return "x", nil },
		StopFunc: func(sctx context.Context) error {
			deadline, hasDeadline = sctx.Deadline()
			return nil
		},
	}
	stop := make(chan struct{})
	close(stop)
	before := time.Now()
	require.NoError(t, services.Run(context.Background(), s, func(string) error { return nil }, stop, services.Options{}))
	after := time.Now()

	require.True(t, hasDeadline, "Stop's context has no deadline with the default options")
	assert.False(t, deadline.Before(before.Add(30*time.Second)))
	assert.False(t, deadline.After(after.Add(30*time.Second)))
}

func TestFuncsNilStopAndCheck(t *testing.T) {
	f := services.Funcs[int]{StartFunc: func(context.Context) (int, error) { return 7, nil }}
	v, err := f.Start(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 7, v)
	assert.NoError(t, f.Stop(context.Background()))
	assert.NoError(t, f.Check(context.Background()))
}

func TestRunContextCancelledDuringStop(t *testing.T) {
	// The host is killed while a cleanly stopping service runs Stop: a
	// killed service did not end well, whatever Stop says.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := services.Funcs[string]{
		StartFunc: func(context.Context) (string, error) { return "x", nil },
		StopFunc: func(sctx context.Context) error {
			cancel()
			assert.NoError(t, sctx.Err(), "Stop's context ended with the host's")
			return nil
		},
	}
	stop := make(chan struct{})
	close(stop)
	err := services.Run(ctx, s, func(string) error { return nil }, stop, fast)
	assert.ErrorIs(t, err, context.Canceled)
}
