package jobstore_test

import (
	"path/filepath"
	"strconv"
	"testing"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/jobstore"
)

// BenchmarkCommit measures durable commits of job creations grouped n per
// transaction: the leader's grouping is what keeps fsyncs off the per-job
// path. Reported as jobs per second.
func BenchmarkCommit(b *testing.B) {
	for _, per := range []int{1, 100, 10000} {
		b.Run(strconv.Itoa(per)+"-per-tx", func(b *testing.B) {
			s, err := jobstore.OpenBolt(filepath.Join(b.TempDir(), "wf.db"), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			job := &jobstore.Job{Kind: "bench.leaf", State: jobstore.StatePending, Preds: []jobstore.JobID{1},
				Requirements: batchsystem.Requirements{Cores: 0.1, Memory: 1 << 26, Disk: 1 << 20}, Retries: -1}
			jobs := 0
			for b.Loop() {
				err := s.Update(b.Context(), func(tx jobstore.Tx) error {
					first, err := tx.AllocIDs(per)
					if err != nil {
						return err
					}
					for i := range per {
						job.ID = first + jobstore.JobID(i)
						if err := tx.CreateJob(job, []byte("42")); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				jobs += per
			}
			b.ReportMetric(float64(jobs)/b.Elapsed().Seconds(), "jobs/s")
		})
	}
}
