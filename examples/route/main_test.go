package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// build compiles the example into a temporary directory.
func build(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the example with")
	}
	bin := filepath.Join(t.TempDir(), "route")
	out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	return bin
}

const wantLines = `route.big: processes (4 jobs)
route.huge: processes (2 jobs)
route.split: inprocess (1 jobs)
route.sum: inprocess (1 jobs)
route.tiny: inprocess (20 jobs)
`

// Killed in the middle of its run and started again on the same store,
// the example finishes and prints the same lines: no job moved to another
// batch system. A third run, on the finished store, prints them again.
func TestKilledAndResumed(t *testing.T) {
	bin := build(t)
	store := filepath.Join(t.TempDir(), "route.db")
	first := exec.Command(bin, "-store", store, "-work", "2s")
	var out bytes.Buffer
	first.Stdout, first.Stderr = &out, &out
	require.NoError(t, first.Start())
	time.Sleep(time.Second) // the big jobs take 6 s on two cores
	require.NoError(t, first.Process.Kill())
	_ = first.Wait()
	require.Empty(t, out.String(), "it was killed before it printed anything")

	for range 2 {
		got, err := exec.Command(bin, "-store", store, "-work", "2s").CombinedOutput()
		require.NoError(t, err, "%s", got)
		require.Equal(t, wantLines, string(got))
	}
}

// With -slurm on the local cluster (scripts/slurm-cluster.sh up), the
// huge jobs are Slurm jobs, and they alone: sacct lists them and nothing
// else of the run.
func TestSlurm(t *testing.T) {
	if os.Getenv("GAFFER_SLURM") != "1" {
		t.Skip("needs a Slurm cluster; run: scripts/slurm-cluster.sh up && GAFFER_SLURM=1 go test ./examples/route")
	}
	out, err := exec.Command("scontrol", "ping").CombinedOutput()
	require.NoError(t, err, "GAFFER_SLURM=1 but the cluster is not reachable: %s", out)
	bin := build(t)
	// sacct's -S has a resolution of a second.
	since := time.Now().Add(-time.Second).Format("2006-01-02T15:04:05")
	cmd := exec.Command(bin, "-slurm", "-work", "1s")
	cmd.Dir = t.TempDir() // the store goes under it, where the Slurm jobs see it
	got, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", got)
	require.Equal(t, strings.Replace(wantLines, "route.huge: processes", "route.huge: slurm", 1), string(got))

	var names []string
	require.Eventually(t, func() bool {
		out, err := exec.Command("sacct", "-n", "-X", "-P", "-S", since, "--format=JobName").Output()
		if err != nil {
			return false
		}
		names = names[:0]
		for _, n := range strings.Fields(string(out)) {
			if strings.HasPrefix(n, "gaffer-route_") {
				names = append(names, n)
			}
		}
		return len(names) >= 2
	}, time.Minute, time.Second, "sacct lists the run's Slurm jobs")
	require.Len(t, names, 2, "sacct: %v", names)
	for _, n := range names {
		require.True(t, strings.HasPrefix(n, "gaffer-route_route.huge_"), "only the huge jobs ran on Slurm: %s", n)
	}
}
