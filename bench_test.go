package gaffer_test

import (
	"path/filepath"
	"strconv"
	"testing"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem/local"
	"github.com/gafferhq/gaffer/examples/fanout/fanout"
)

func benchFanout(b *testing.B, n int, mode local.Mode) {
	for b.Loop() {
		b.StopTimer()
		bs, err := local.New(local.Options{Mode: mode})
		if err != nil {
			b.Fatal(err)
		}
		l, err := gaffer.NewLeader(gaffer.Config{Store: filepath.Join(b.TempDir(), "wf.db"), BatchSystem: bs})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		sum, err := gaffer.Run(b.Context(), l, fanout.Root.New(n))
		b.StopTimer()
		if err != nil || sum != n*(n-1)/2 {
			b.Fatalf("sum %d, err %v", sum, err)
		}
		l.Close()
		bs.Shutdown(b.Context())
		b.StartTimer()
	}
	b.ReportMetric(float64(n+2)*float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

// BenchmarkFanoutInProcess runs the fan-out example end to end on a
// durable bbolt store with in-process jobs.
func BenchmarkFanoutInProcess(b *testing.B) {
	for _, n := range []int{1000, 100000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) { benchFanout(b, n, local.InProcess) })
	}
}

// BenchmarkFanoutSubprocess runs it with each job in its own worker
// process (this test binary, started again in worker mode).
func BenchmarkFanoutSubprocess(b *testing.B) {
	b.Run("2000", func(b *testing.B) { benchFanout(b, 2000, local.Subprocess) })
}

// BenchmarkFanoutWorkers runs it with jobs in a pool of worker processes
// (local.Workers), each started once and fed one job after another.
func BenchmarkFanoutWorkers(b *testing.B) {
	b.Run("20000", func(b *testing.B) { benchFanout(b, 20000, local.Workers) })
}
