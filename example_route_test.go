package gaffer_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/batchsystem/local"
)

var (
	// ExRouteWhere says whether it ran in the leader's process.
	ExRouteWhere = gaffer.MustRegister("example.route.where", func(_ context.Context, _ *gaffer.JobContext, leader int) (string, error) {
		if os.Getpid() == leader {
			return "in the leader's process", nil
		}
		return "in a worker process", nil
	}, gaffer.Cores(0.1), gaffer.Memory("16Mi"), gaffer.Disk("1Mi"))
	exRouteList = gaffer.MustRegister("example.route.list", func(_ context.Context, _ *gaffer.JobContext, s []string) ([]string, error) {
		return s, nil
	}, gaffer.Cores(0.1), gaffer.Memory("16Mi"), gaffer.Disk("1Mi"))
	// ExRouteRoot runs three jobs: a small one, one that asks for a core,
	// and a small one that asks for the worker processes by name.
	ExRouteRoot = gaffer.MustRegister("example.route.root", func(_ context.Context, jc *gaffer.JobContext, leader int) ([]string, error) {
		var parts []gaffer.Input[string]
		for _, opts := range [][]gaffer.JobOption{nil, {gaffer.Cores(1)}, {gaffer.RunOn("processes")}} {
			j := ExRouteWhere.New(leader, opts...)
			jc.AddChild(j)
			parts = append(parts, j.Result())
		}
		list := exRouteList.NewFrom(gaffer.Collect(parts...))
		jc.AddFollowOn(list)
		return gaffer.Forward(jc, list.Result())
	}, gaffer.Cores(0.1), gaffer.Memory("16Mi"), gaffer.Disk("1Mi"))
)

// A leader with two batch systems: jobs that ask for less than a core run
// in the leader's process, the others in worker processes; a job may also
// ask for one by name (RunOn), and this rule leaves it its choice.
func ExampleConfig_batchSystems() {
	dir, _ := os.MkdirTemp("", "gaffer-example-")
	defer os.RemoveAll(dir)
	inproc, _ := local.New(local.Options{})
	procs, _ := local.New(local.Options{Mode: local.Subprocess})
	defer inproc.Shutdown(context.Background())
	defer procs.Shutdown(context.Background())

	l, err := gaffer.NewLeader(gaffer.Config{
		Store:        filepath.Join(dir, "wf.db"),
		BatchSystems: map[string]batchsystem.BatchSystem{"inprocess": inproc, "processes": procs},
		Route: func(job gaffer.RouteInfo) string {
			switch {
			case job.Target != "":
				return "" // the job's own choice
			case job.Requirements.Cores < 1:
				return "inprocess"
			}
			return "processes"
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()
	where, err := gaffer.Run(context.Background(), l, ExRouteRoot.New(os.Getpid()))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, w := range where {
		fmt.Println(w)
	}
	// Output:
	// in the leader's process
	// in a worker process
	// in a worker process
}
