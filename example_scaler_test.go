package gaffer_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/scaler"
	"github.com/gafferhq/gaffer/scaler/simcluster"
)

// exAlign is a big job: two of them fill a node of the cluster below.
var exAlign = gaffer.MustRegister("example.scaler.align", func(ctx context.Context, jc *gaffer.JobContext, chunk int) (int, error) {
	return 1, nil
}, gaffer.Cores(2), gaffer.Memory("4G"), gaffer.Disk("10G"))

// exAlignAll aligns n chunks and counts those aligned.
var exAlignAll = gaffer.MustRegister("example.scaler.all", func(ctx context.Context, jc *gaffer.JobContext, n int) (int, error) {
	parts := make([]gaffer.Input[int], n)
	for i := range n {
		a := exAlign.New(i)
		jc.AddChild(a)
		parts[i] = a.Result()
	}
	sum := exSum.NewFrom(gaffer.Collect(parts...)) // exSum: example_fanout_test.go
	jc.AddFollowOn(sum)
	return gaffer.Forward(jc, sum.Result())
}, exSmall...)

// With a Provisioner, the leader runs a cluster scaler: it learns how long
// jobs of each type run, packs the issued ones onto node types, and adds
// nodes, then removes them once they are idle. The cluster here is
// simulated in virtual time (each align "takes" 20 minutes), so the
// example runs in well under a second.
func ExampleConfig_provisioner() {
	dir, err := os.MkdirTemp("", "gaffer-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	const gb = 1_000_000_000
	cluster, err := simcluster.New(simcluster.Config{
		NodeTypes: []scaler.NodeType{{Name: "std", PricePerHour: 0.2,
			Shape: scaler.Shape{Cores: 4, Memory: 16 * gb, Disk: 100 * gb}}},
		BootTime: 2 * time.Minute,
		Runtime: func(job batchsystem.JobSpec) time.Duration {
			if job.Kind == exAlign.Name() {
				return 20 * time.Minute
			}
			return time.Minute
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	// The simulated cluster is both the batch system and the provisioner.
	leader, err := gaffer.NewLeader(gaffer.Config{Store: filepath.Join(dir, "workflow.db"),
		BatchSystem: cluster, Provisioner: cluster})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer leader.Close()

	aligned, err := gaffer.Run(context.Background(), leader, exAlignAll.New(12))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("chunks aligned:", aligned)
	st := cluster.Stats()
	fmt.Println("jobs run on the cluster:", st.TotalJobs)
	fmt.Println("the scaler started nodes:", st.MaxNodes["std"] > 0)
	nodes, err := cluster.Nodes(context.Background())
	fmt.Println("nodes left at the end:", len(nodes), err)
	// Output:
	// chunks aligned: 12
	// jobs run on the cluster: 14
	// the scaler started nodes: true
	// nodes left at the end: 0 <nil>
}
