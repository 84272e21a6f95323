package slurm

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeSlurm is a Runner that plays a Slurm controller in memory, so the
// adapter's submission, polling and killing logic run without a cluster.
// Tests move jobs between states by hand.
type fakeSlurm struct {
	mu      sync.Mutex
	next    int
	jobs    map[string]*fakeJob
	calls   map[string]int
	argv    map[string][][]string // every invocation's arguments, per command
	maxCPUs int
	fail    map[string]error // command name -> error to return
	// failTimes makes the next N runs of a command fail as if the
	// controller were unreachable.
	failTimes map[string]int
}

type fakeJob struct {
	name     string
	state    string
	raw      uint32 // wait status as squeue prints it
	exitPair string // ExitCode as sacct prints it
	elapsed  string
	reason   string
	purged   bool // the controller forgot it: only sacct knows it
	inAcct   bool // accounting has a record
}

func newFake() *fakeSlurm {
	return &fakeSlurm{next: 100, jobs: map[string]*fakeJob{}, calls: map[string]int{},
		argv: map[string][][]string{}, maxCPUs: 8, fail: map[string]error{}, failTimes: map[string]int{}}
}

func (f *fakeSlurm) count(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[name]
}

func (f *fakeSlurm) lastArgs(name string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.argv[name]
	if len(a) == 0 {
		return nil
	}
	return a[len(a)-1]
}

// set moves a job to a state with a wait status and elapsed time.
func (f *fakeSlurm) set(id, state string, raw uint32, elapsed string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j := f.jobs[id]
	j.state, j.raw, j.elapsed = state, raw, elapsed
	exit, sig := splitWaitStatus(raw)
	j.exitPair = fmt.Sprintf("%d:%d", exit, sig)
}

// purge makes the controller forget a job; inAcct says whether sacct
// still knows it.
func (f *fakeSlurm) purge(id string, inAcct bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jobs[id].purged = true
	f.jobs[id].inAcct = inAcct
}

func (f *fakeSlurm) add(id, name, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jobs[id] = &fakeJob{name: name, state: state, elapsed: "0:00", exitPair: "0:0", reason: "None"}
}

func (f *fakeSlurm) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[name]++
	f.argv[name] = append(f.argv[name], args)
	if err := f.fail[name]; err != nil {
		return nil, err
	}
	if f.failTimes[name] > 0 {
		f.failTimes[name]--
		return nil, &CommandError{Name: name, Args: args, ExitCode: 1,
			Stderr: name + ": error: Unable to contact slurm controller (connect failure)"}
	}
	flag := func(prefix string) string {
		for _, a := range args {
			if v, ok := strings.CutPrefix(a, prefix); ok {
				return v
			}
		}
		return ""
	}
	bad := func(stderr string) error {
		return &CommandError{Name: name, Args: args, ExitCode: 1, Stderr: stderr}
	}
	switch name {
	case "sbatch":
		if n, _ := strconv.Atoi(flag("--cpus-per-task=")); n > f.maxCPUs {
			return nil, bad("sbatch: error: Batch job submission failed: More processors requested than permitted")
		}
		id := strconv.Itoa(f.next)
		f.next++
		f.jobs[id] = &fakeJob{name: flag("--job-name="), state: "PENDING", elapsed: "0:00", exitPair: "0:0", reason: "Priority"}
		return []byte(id + "\n"), nil
	case "squeue":
		var sb strings.Builder
		for _, id := range strings.Split(flag("--jobs="), ",") {
			j, ok := f.jobs[id]
			if !ok || j.purged {
				continue
			}
			fmt.Fprintf(&sb, "%s\x1f%s\x1f%d\x1f%s\x1f%s\x1f%s\x1f\n", id, j.state, j.raw, j.elapsed, j.name, j.reason)
		}
		if sb.Len() == 0 {
			return nil, bad("slurm_load_jobs error: Invalid job id specified")
		}
		return []byte(sb.String()), nil
	case "sacct":
		var sb strings.Builder
		for _, id := range strings.Split(flag("--jobs="), ",") {
			j, ok := f.jobs[id]
			if !ok || !j.inAcct {
				continue
			}
			fmt.Fprintf(&sb, "%s\x1f%s\x1f%s\x1f%s\x1f%s\n", id, j.state, j.exitPair, j.elapsed, j.name)
			fmt.Fprintf(&sb, "%s.batch\x1f%s\x1f%s\x1f%s\x1fbatch\n", id, j.state, j.exitPair, j.elapsed)
		}
		return []byte(sb.String()), nil
	case "scontrol":
		id := args[len(args)-1]
		j, ok := f.jobs[id]
		if !ok || j.purged {
			return nil, bad("slurm_load_jobs error: Invalid job id specified")
		}
		return []byte(fmt.Sprintf("JobId=%s JobName=%s JobState=%s Reason=%s ExitCode=%s RunTime=%s NodeList=localhost\n",
			id, j.name, j.state, j.reason, j.exitPair, j.elapsed)), nil
	case "scancel":
		only := flag("--name=")
		for _, id := range args {
			j, ok := f.jobs[id]
			if !ok || (only != "" && j.name != only) {
				continue
			}
			if j.state == "PENDING" || j.state == "RUNNING" {
				j.state, j.raw, j.exitPair = "CANCELLED", 15, "0:15"
			}
		}
		return nil, nil
	}
	return nil, bad("fake: unknown command " + name)
}

// newTestSystem returns a BatchSystem on a fake Slurm that polls fast.
func newTestSystem(t *testing.T, mod func(*Options)) (*BatchSystem, *fakeSlurm) {
	t.Helper()
	f := newFake()
	o := Options{Runner: f, PollInterval: 5 * time.Millisecond, KillTimeout: 30 * time.Second}
	if mod != nil {
		mod(&o)
	}
	b, err := New(o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Shutdown(context.Background()) })
	return b, f
}
