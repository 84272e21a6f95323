package gaffer_test

import (
	"context"
	"errors"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem/local"
	"github.com/gafferhq/gaffer/internal/rusage"
	"github.com/gafferhq/gaffer/services"
)

// benchSvc is a lean service: it starts at once with its number as its
// value, has nothing to stop, and its check (called every service poll)
// does nothing.
var benchSvc = gaffer.MustRegisterService("bench.svc.service", func(ctx context.Context, jc *gaffer.JobContext, n int) (services.Service[int], error) {
	return services.Funcs[int]{StartFunc: func(context.Context) (int, error) { return n, nil }}, nil
})

// benchSvcUse returns the value of the service it was given.
var benchSvcUse = gaffer.MustRegister("bench.svc.use", func(ctx context.Context, jc *gaffer.JobContext, v gaffer.Promise[int]) (int, error) {
	return v.Get()
})

// benchSvcClient gives itself a service and a child that uses it.
var benchSvcClient = gaffer.MustRegister("bench.svc.client", func(ctx context.Context, jc *gaffer.JobContext, n int) (struct{}, error) {
	s := benchSvc.New(n)
	jc.AddService(s)
	jc.AddChild(benchSvcUse.New(s.Result()))
	return struct{}{}, nil
})

// benchSvcRoot adds n clients.
var benchSvcRoot = gaffer.MustRegister("bench.svc.root", func(ctx context.Context, jc *gaffer.JobContext, n int) (int, error) {
	for i := range n {
		jc.AddChild(benchSvcClient.New(i))
	}
	return n, nil
})

// cpuTime is the CPU (user + system) this process has used so far.
func cpuTime(b *testing.B) time.Duration {
	d, ok := rusage.CPU()
	if !ok {
		b.Skip("no CPU time on this operating system")
	}
	return d
}

// BenchmarkServices runs a workflow of s services spread across it: a
// root with s clients, each with one service and one child that takes the
// service's value, all in-process on a durable bbolt store. Every job and
// service is one leader event: 3s+1 of them. The point is the cost per
// event as s grows (it should stay flat: no O(n²)). CPU is the whole
// process's, in-process jobs and services included.
//
// In-process, the leader stops a service by closing a channel, so the
// service poll interval does not delay stops; it sets how often each
// running service's host wakes up to check it. Both the default (1 s)
// and a 10 ms poll are measured.
func BenchmarkServices(b *testing.B) {
	for _, s := range []int{1000, 3000, 10000} {
		b.Run(strconv.Itoa(s), func(b *testing.B) {
			if s > 2000 && raceEnabled() {
				b.Skip("the race detector allows at most 8128 live goroutines; this runs one per service")
			}
			for _, poll := range []time.Duration{time.Second, 10 * time.Millisecond} {
				b.Run("poll="+poll.String(), func(b *testing.B) { benchServices(b, s, poll) })
			}
		})
	}
}

// raceEnabled reports whether this binary was built with -race.
func raceEnabled() bool {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, st := range bi.Settings {
			if st.Key == "-race" {
				return st.Value == "true"
			}
		}
	}
	return false
}

func benchServices(b *testing.B, s int, poll time.Duration) {
	var wall, cpu time.Duration
	var events int
	for b.Loop() {
		b.StopTimer()
		// Every job asks for 0.001 core, counted as the local batch
		// system's grain, 0.1 core: room for all 3s+1 at once.
		bs, err := local.New(local.Options{Cores: 0.1*float64(3*s+1) + 1, Memory: 1 << 40, Disk: 1 << 40})
		if err != nil {
			b.Fatal(err)
		}
		l, err := gaffer.NewLeader(gaffer.Config{
			Store:               filepath.Join(b.TempDir(), "wf.db"),
			BatchSystem:         bs,
			DefaultRequirements: gaffer.Requirements{Cores: 0.001, Memory: 1 << 20, Disk: 1 << 20},
			ServicePollInterval: poll,
			// MaxIssued is left at its default (10,000): services do not
			// count against it, so at s = 10,000 their users still get in.
		})
		if err != nil {
			b.Fatal(err)
		}
		c0, t0 := cpuTime(b), time.Now()
		b.StartTimer()
		got, err := gaffer.Run(b.Context(), l, benchSvcRoot.New(s))
		b.StopTimer()
		wall += time.Since(t0)
		cpu += cpuTime(b) - c0
		if err != nil || got != s {
			b.Fatalf("got %d, err %v", got, err)
		}
		st := l.Stats()
		if st.Attempts != 3*s+1 || st.Failures != 0 {
			b.Fatalf("stats %+v, want %d issued and none failed", st, 3*s+1)
		}
		events += st.Attempts
		l.Close()
		bs.Shutdown(context.WithoutCancel(b.Context()))
		b.StartTimer()
	}
	b.ReportMetric(float64(events)/float64(b.N), "events/op")
	b.ReportMetric(float64(events)/wall.Seconds(), "events/s")
	b.ReportMetric(float64(wall.Nanoseconds())/float64(events), "ns/event")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(events), "cpu-ns/event")
}

// benchHogStarted is when the deadlock benchmark's service started, in
// Unix nanoseconds.
var benchHogStarted atomic.Int64

// benchHog holds its core until it is stopped.
var benchHog = gaffer.MustRegisterService("bench.svc.hog", func(ctx context.Context, jc *gaffer.JobContext, _ struct{}) (services.Service[int], error) {
	return services.Funcs[int]{StartFunc: func(context.Context) (int, error) {
		benchHogStarted.Store(time.Now().UnixNano())
		return 1, nil
	}}, nil
})

// benchHogClient has the hog as its service and a child that needs the
// core the hog holds.
var benchHogClient = gaffer.MustRegister("bench.svc.hogclient", func(ctx context.Context, jc *gaffer.JobContext, _ struct{}) (int, error) {
	s := benchHog.New(struct{}{}, gaffer.Cores(1))
	jc.AddService(s)
	jc.AddChild(benchSvcUse.New(s.Result(), gaffer.Cores(1)))
	return 0, nil
})

// BenchmarkDeadlockDetection measures how long after a service deadlock
// begins the leader ends the run: a service holds the only core of a
// 1-core batch system while its client's child, needing that core, waits.
// The clock runs from the service's Start to Run's return; the claim is
// detection within DeadlockWait plus one DeadlockCheckInterval.
func BenchmarkDeadlockDetection(b *testing.B) {
	const wait, interval = time.Second, 250 * time.Millisecond
	var total, worst time.Duration
	for i := 0; i < b.N; i++ {
		bs, err := local.New(local.Options{Cores: 1, Memory: 1 << 30, Disk: 1 << 30})
		if err != nil {
			b.Fatal(err)
		}
		l, err := gaffer.NewLeader(gaffer.Config{
			Store:                 filepath.Join(b.TempDir(), "wf.db"),
			BatchSystem:           bs,
			DefaultRequirements:   gaffer.Requirements{Cores: 0.1, Memory: 1 << 20, Disk: 1 << 20},
			DeadlockWait:          wait,
			DeadlockCheckInterval: interval,
			PollInterval:          50 * time.Millisecond,
			ServicePollInterval:   10 * time.Millisecond,
		})
		if err != nil {
			b.Fatal(err)
		}
		benchHogStarted.Store(0)
		ctx, cancel := context.WithTimeout(b.Context(), 30*time.Second)
		_, err = gaffer.Run(ctx, l, benchHogClient.New(struct{}{}))
		end := time.Now()
		cancel()
		if !errors.Is(err, gaffer.ErrDeadlock) {
			b.Fatalf("want a deadlock error, got %v", err)
		}
		started := benchHogStarted.Load()
		if started == 0 {
			b.Fatal("the service never started")
		}
		d := end.Sub(time.Unix(0, started))
		total += d
		worst = max(worst, d)
		l.Close()
		bs.Shutdown(context.WithoutCancel(b.Context()))
	}
	mean := total / time.Duration(b.N)
	b.ReportMetric(mean.Seconds(), "s-detect")
	b.ReportMetric((mean - wait).Seconds(), "s-over-wait")
	b.ReportMetric(worst.Seconds(), "s-worst")
}
