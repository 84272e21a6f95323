package slurm

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/batchsystem"
)

func shSpec(id, script string) batchsystem.JobSpec {
	return batchsystem.JobSpec{
		JobID: id, Name: id, Kind: "test", Attempt: 1,
		Command:      []string{"/bin/sh", "-c", script},
		Requirements: batchsystem.Requirements{Cores: 1, Memory: 16 << 20},
	}
}

// waitOne waits for the next report, failing the test if none comes.
func waitOne(t *testing.T, b *BatchSystem) *batchsystem.FinishedJob {
	t.Helper()
	f, err := b.WaitFinished(t.Context(), 30*time.Second)
	require.NoError(t, err)
	require.NotNil(t, f, "no job reported")
	return f
}

// waitPolls returns after the poller has run n more query sets.
func waitPolls(t *testing.T, b *BatchSystem, n int64) {
	t.Helper()
	target := b.polls.Load() + n
	require.Eventually(t, func() bool { return b.polls.Load() >= target }, 30*time.Second, time.Millisecond)
}

func TestLifecycle(t *testing.T) {
	b, f := newTestSystem(t, nil)
	id, err := b.Issue(t.Context(), shSpec("a", "true"))
	require.NoError(t, err)
	require.NotZero(t, id)
	slurmID, ok := b.BackingID(id)
	require.True(t, ok)
	require.Equal(t, "100", slurmID)

	waitPolls(t, b, 2)
	require.Contains(t, b.SchedulingStatus(id), "PENDING (Priority)")
	running, err := b.Running(t.Context())
	require.NoError(t, err)
	require.Empty(t, running, "a pending job is not running")

	f.set(slurmID, "RUNNING", 0, "1:05")
	waitPolls(t, b, 2)
	running, err = b.Running(t.Context())
	require.NoError(t, err)
	require.GreaterOrEqual(t, running[id], 65*time.Second, "run time comes from Slurm")
	require.Empty(t, b.SchedulingStatus(id))

	fin, err := b.WaitFinished(t.Context(), 0)
	require.NoError(t, err)
	require.Nil(t, fin, "nothing finished yet")

	f.set(slurmID, "COMPLETED", 0, "2:00")
	fin = waitOne(t, b)
	require.Equal(t, id, fin.ID)
	require.Equal(t, 0, fin.ExitCode)
	require.Equal(t, batchsystem.Finished, fin.Reason)
	require.Equal(t, slurmID, fin.BackingID)
	require.Equal(t, 2*time.Minute+time.Second/2, fin.WallTime)

	issued, err := b.Issued(t.Context())
	require.NoError(t, err)
	require.Empty(t, issued)
	_, ok = b.BackingID(id)
	require.False(t, ok)
}

func TestFinishedStates(t *testing.T) {
	b, f := newTestSystem(t, nil)
	cases := []struct {
		state  string
		raw    uint32
		code   int
		reason batchsystem.ExitReason
	}{
		{"FAILED", 3 << 8, 3, batchsystem.Failed},
		{"TIMEOUT", 15, 143, batchsystem.Killed},
		{"TIMEOUT", 0, 255, batchsystem.Killed},
		{"OUT_OF_MEMORY", 9, 137, batchsystem.MemLimit},
		{"NODE_FAIL", 0, 255, batchsystem.Lost},
		{"CANCELLED", 0, 255, batchsystem.Killed},
	}
	byID := map[batchsystem.ID]int{}
	for i, c := range cases {
		id, err := b.Issue(t.Context(), shSpec(fmt.Sprint(i), "true"))
		require.NoError(t, err)
		sid, _ := b.BackingID(id)
		f.set(sid, c.state, c.raw, "0:03")
		byID[id] = i
	}
	for range cases {
		fin := waitOne(t, b)
		c := cases[byID[fin.ID]]
		require.Equal(t, c.code, fin.ExitCode, c.state)
		require.Equal(t, c.reason, fin.Reason, c.state)
		require.Contains(t, fin.Message, c.state)
	}
	fin, err := b.WaitFinished(t.Context(), 0)
	require.NoError(t, err)
	require.Nil(t, fin, "each job is reported once")
}

func TestForgottenJobsComeFromAccounting(t *testing.T) {
	b, f := newTestSystem(t, nil)
	id, err := b.Issue(t.Context(), shSpec("a", "exit 4"))
	require.NoError(t, err)
	sid, _ := b.BackingID(id)
	f.set(sid, "FAILED", 4<<8, "0:10")
	f.purge(sid, true)
	fin := waitOne(t, b)
	require.Equal(t, 4, fin.ExitCode)
	require.Contains(t, fin.Message, "accounting")
	args := f.lastArgs("sacct")
	v, ok := argValue(args, "--starttime=")
	require.True(t, ok, "sacct always gets a start time: %q", args)
	require.NotEmpty(t, v)
	require.Contains(t, args, "--jobs="+sid)
}

func TestUnknownJobStaysIssued(t *testing.T) {
	b, f := newTestSystem(t, nil)
	id, err := b.Issue(t.Context(), shSpec("a", "true"))
	require.NoError(t, err)
	sid, _ := b.BackingID(id)
	f.set(sid, "RUNNING", 0, "0:01")
	waitPolls(t, b, 2)
	f.purge(sid, false) // neither squeue nor sacct knows it
	waitPolls(t, b, 2)

	issued, err := b.Issued(t.Context())
	require.NoError(t, err)
	require.Equal(t, []batchsystem.ID{id}, issued, "unknown is not failed")
	running, err := b.Running(t.Context())
	require.NoError(t, err)
	require.Empty(t, running, "unknown is not running")
	require.Contains(t, b.SchedulingStatus(id), "unknown")
	fin, err := b.WaitFinished(t.Context(), 0)
	require.NoError(t, err)
	require.Nil(t, fin)
}

func TestAccountingNoneNeverRunsSacct(t *testing.T) {
	b, f := newTestSystem(t, func(o *Options) { o.Accounting = AccountingNone })
	id, err := b.Issue(t.Context(), shSpec("a", "true"))
	require.NoError(t, err)
	sid, _ := b.BackingID(id)
	f.purge(sid, true)
	waitPolls(t, b, 3)
	require.Zero(t, f.count("sacct"))
	issued, _ := b.Issued(t.Context())
	require.Contains(t, issued, id)
}

func TestJobCompAccountingUsesCompletion(t *testing.T) {
	b, f := newTestSystem(t, func(o *Options) { o.Accounting = AccountingJobComp })
	id, err := b.Issue(t.Context(), shSpec("a", "true"))
	require.NoError(t, err)
	sid, _ := b.BackingID(id)
	f.set(sid, "COMPLETED", 0, "0:01")
	f.purge(sid, true)
	waitOne(t, b)
	require.Contains(t, f.lastArgs("sacct"), "--completion")
}

func TestSqueueFailureChangesNothing(t *testing.T) {
	b, f := newTestSystem(t, nil)
	id, err := b.Issue(t.Context(), shSpec("a", "true"))
	require.NoError(t, err)
	sid, _ := b.BackingID(id)
	f.set(sid, "RUNNING", 0, "0:01")
	waitPolls(t, b, 2)
	f.mu.Lock()
	f.fail["squeue"] = &CommandError{Name: "squeue", ExitCode: 1, Stderr: "slurm_load_jobs error: Unable to contact slurm controller"}
	f.mu.Unlock()
	f.set(sid, "COMPLETED", 0, "0:02")
	waitPolls(t, b, 3)
	running, err := b.Running(t.Context())
	require.NoError(t, err)
	require.Contains(t, running, id, "a failed query keeps the last known state")
	require.Zero(t, f.count("sacct"), "a failed squeue says nothing about which jobs are gone")
	fin, err := b.WaitFinished(t.Context(), 0)
	require.NoError(t, err)
	require.Nil(t, fin)

	f.mu.Lock()
	delete(f.fail, "squeue")
	f.mu.Unlock()
	require.Equal(t, id, waitOne(t, b).ID)
}

func TestKill(t *testing.T) {
	b, f := newTestSystem(t, nil)
	long, err := b.Issue(t.Context(), shSpec("long", "sleep 1000"))
	require.NoError(t, err)
	done, err := b.Issue(t.Context(), shSpec("done", "true"))
	require.NoError(t, err)
	lsid, _ := b.BackingID(long)
	dsid, _ := b.BackingID(done)
	f.set(lsid, "RUNNING", 0, "0:01")
	f.set(dsid, "COMPLETED", 0, "0:01")
	waitPolls(t, b, 2)

	// done finished but was not collected: killing it drops it silently.
	require.NoError(t, b.Kill(t.Context(), []batchsystem.ID{long, done, 999}))
	require.Contains(t, f.lastArgs("scancel"), lsid)
	f.mu.Lock()
	require.Equal(t, "CANCELLED", f.jobs[lsid].state)
	f.mu.Unlock()

	issued, err := b.Issued(t.Context())
	require.NoError(t, err)
	require.Empty(t, issued)
	running, err := b.Running(t.Context())
	require.NoError(t, err)
	require.Empty(t, running)
	// A later job is reported, and the killed ones never are.
	after, err := b.Issue(t.Context(), shSpec("after", "true"))
	require.NoError(t, err)
	asid, _ := b.BackingID(after)
	f.set(asid, "COMPLETED", 0, "0:01")
	require.Equal(t, after, waitOne(t, b).ID)
	fin, err := b.WaitFinished(t.Context(), 100*time.Millisecond)
	require.NoError(t, err)
	require.Nil(t, fin, "killed jobs are never reported")
}

// A cancelled job that lingers in COMPLETING keeps Kill waiting: Kill
// promises the job is not running when it returns.
func TestKillWaitsForSlurm(t *testing.T) {
	b, f := newTestSystem(t, nil)
	id, err := b.Issue(t.Context(), shSpec("a", "sleep 1000"))
	require.NoError(t, err)
	sid, _ := b.BackingID(id)
	f.set(sid, "COMPLETING", 0, "0:01") // scancel leaves COMPLETING alone in the fake
	errc := make(chan error, 1)
	go func() { errc <- b.Kill(context.Background(), []batchsystem.ID{id}) }()
	waitPolls(t, b, 3)
	select {
	case err := <-errc:
		t.Fatalf("Kill returned while Slurm still showed the job: %v", err)
	default:
	}
	f.set(sid, "CANCELLED", 15, "0:02")
	require.NoError(t, <-errc)
}

func TestKillTimeout(t *testing.T) {
	b, f := newTestSystem(t, func(o *Options) { o.KillTimeout = 50 * time.Millisecond })
	id, err := b.Issue(t.Context(), shSpec("a", "sleep 1000"))
	require.NoError(t, err)
	sid, _ := b.BackingID(id)
	f.set(sid, "COMPLETING", 0, "0:01")
	err = b.Kill(t.Context(), []batchsystem.ID{id})
	require.ErrorIs(t, err, ErrKillTimeout)
	f.set(sid, "CANCELLED", 15, "0:02") // let Shutdown in Cleanup finish
}

func TestShutdownCancelsEverything(t *testing.T) {
	b, f := newTestSystem(t, nil)
	var sids []string
	for i := range 5 {
		id, err := b.Issue(t.Context(), shSpec(fmt.Sprint(i), "sleep 1000"))
		require.NoError(t, err)
		sid, _ := b.BackingID(id)
		sids = append(sids, sid)
		if i%2 == 0 {
			f.set(sid, "RUNNING", 0, "0:01")
		}
	}
	require.NoError(t, b.Shutdown(t.Context()))
	f.mu.Lock()
	for _, sid := range sids {
		require.Equal(t, "CANCELLED", f.jobs[sid].state, sid)
	}
	f.mu.Unlock()
	_, err := b.Issue(t.Context(), shSpec("late", "true"))
	require.ErrorIs(t, err, batchsystem.ErrShutdown)
	_, err = b.Issued(t.Context())
	require.ErrorIs(t, err, batchsystem.ErrShutdown)
	require.ErrorIs(t, b.Shutdown(t.Context()), batchsystem.ErrShutdown)
}

func TestInsufficientResources(t *testing.T) {
	b, _ := newTestSystem(t, nil)
	spec := shSpec("huge", "true")
	spec.Requirements.Cores = 64
	_, err := b.Issue(t.Context(), spec)
	require.ErrorIs(t, err, batchsystem.ErrInsufficientResources)
	var ire *batchsystem.InsufficientResourcesError
	require.True(t, errors.As(err, &ire))
	require.Equal(t, "cores", ire.Resource)
	require.Equal(t, "huge", ire.JobID)
}

func TestSubmitRetriesTransientErrors(t *testing.T) {
	calls := 0
	r := runnerFunc(func(ctx context.Context, name string, args ...string) ([]byte, error) {
		if name != "sbatch" {
			return nil, &CommandError{Name: name, ExitCode: 1, Stderr: "slurm_load_jobs error: Invalid job id specified"}
		}
		calls++
		if calls < 3 {
			return nil, &CommandError{Name: name, ExitCode: 1, Stderr: "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation"}
		}
		return []byte("77\n"), nil
	})
	b, err := New(Options{Runner: r, PollInterval: time.Millisecond})
	require.NoError(t, err)
	b.retryDelay = time.Millisecond
	defer b.Shutdown(context.Background())
	id, err := b.Issue(t.Context(), shSpec("a", "true"))
	require.NoError(t, err)
	sid, _ := b.BackingID(id)
	require.Equal(t, "77", sid)
	require.Equal(t, 3, calls)

	calls = -100 // fail "forever"
	_, err = b.Issue(t.Context(), shSpec("b", "true"))
	require.Error(t, err)
	var ce *CommandError
	require.True(t, errors.As(err, &ce))
	require.Equal(t, -96, calls, "1 try + 3 retries")
}

type runnerFunc func(ctx context.Context, name string, args ...string) ([]byte, error)

func (f runnerFunc) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return f(ctx, name, args...)
}

func TestAdopt(t *testing.T) {
	b, f := newTestSystem(t, nil)
	spec := shSpec("j1", "true")
	f.add("5000", jobName("gaffer", spec), "RUNNING")
	f.add("5001", "someone_else", "RUNNING")

	id, err := b.Adopt(t.Context(), spec, "5000")
	require.NoError(t, err)
	_, err = b.Adopt(t.Context(), spec, "5000")
	require.ErrorIs(t, err, ErrAlreadyTracked)
	_, err = b.Adopt(t.Context(), spec, "12_3")
	require.ErrorIs(t, err, ErrBadSpec)

	other, err := b.Adopt(t.Context(), shSpec("j2", "true"), "5001")
	require.NoError(t, err)
	fin := waitOne(t, b)
	require.Equal(t, other, fin.ID, "a job under another name is not ours")
	require.Equal(t, batchsystem.Lost, fin.Reason)
	require.Contains(t, fin.Message, "someone_else")

	running, err := b.Running(t.Context())
	require.NoError(t, err)
	require.Contains(t, running, id)
	f.set("5000", "COMPLETED", 0, "3:00")
	fin = waitOne(t, b)
	require.Equal(t, id, fin.ID)
	require.Equal(t, 0, fin.ExitCode)
	f.mu.Lock()
	require.Equal(t, "RUNNING", f.jobs["5001"].state, "never touched")
	f.mu.Unlock()
}

func TestKillAdoptedUsesName(t *testing.T) {
	b, f := newTestSystem(t, func(o *Options) { o.KillTimeout = 100 * time.Millisecond })
	spec := shSpec("j1", "true")
	f.add("5000", "not_ours", "RUNNING")
	// No poll can check the name before the kill: scancel must filter.
	f.mu.Lock()
	f.fail["squeue"] = &CommandError{Name: "squeue", ExitCode: 1, Stderr: "Socket timed out"}
	f.mu.Unlock()
	id, err := b.Adopt(t.Context(), spec, "5000")
	require.NoError(t, err)
	require.ErrorIs(t, b.Kill(t.Context(), []batchsystem.ID{id}), ErrKillTimeout, "no poll confirms the kill")
	require.Contains(t, f.lastArgs("scancel"), "--name="+jobName("gaffer", spec))
	f.mu.Lock()
	delete(f.fail, "squeue")
	f.mu.Unlock()
	f.mu.Lock()
	require.Equal(t, "RUNNING", f.jobs["5000"].state, "someone else's job survives")
	f.mu.Unlock()
}

// TestOneQuerySetPerInterval issues more jobs than fit one query and hammers
// the read calls from many goroutines: the number of squeue runs depends on
// the poll count alone (one per 1000 jobs per poll), and polls never come
// closer than PollInterval.
func TestOneQuerySetPerInterval(t *testing.T) {
	const interval = 20 * time.Millisecond
	b, f := newTestSystem(t, func(o *Options) { o.PollInterval = interval })
	const n = 2500
	for i := range n {
		_, err := b.Issue(t.Context(), shSpec(fmt.Sprint(i), "true"))
		require.NoError(t, err)
	}
	start := time.Now()
	polls0, squeue0 := b.polls.Load(), f.count("squeue")
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	var calls sync.Map
	for g := range 16 {
		wg.Go(func() {
			k := 0
			for ctx.Err() == nil {
				_, _ = b.Running(ctx)
				_, _ = b.Issued(ctx)
				_, _ = b.WaitFinished(ctx, 0)
				b.SchedulingStatus(1)
				k++
			}
			calls.Store(g, k)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	polls := b.polls.Load() - polls0 + 1 // a poll may have been under way at start
	squeues := int64(f.count("squeue") - squeue0)
	total := 0
	calls.Range(func(_, v any) bool { total += v.(int); return true })
	t.Logf("%d jobs, %d caller rounds, %v: %d polls, %d squeue runs", n, total, elapsed, polls, squeues)
	require.Greater(t, int64(total), 10*polls, "callers asked far more often than the poller queried")
	require.LessOrEqual(t, squeues, polls*3, "one squeue per 1000 jobs per poll")
	require.LessOrEqual(t, polls, int64(elapsed/interval)+2, "no two polls within one interval")
	require.Zero(t, f.count("sacct"), "squeue knew every job")
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range f.argv["squeue"] {
		ids, _ := argValue(a, "--jobs=")
		require.LessOrEqual(t, len(splitComma(ids)), 1000)
	}
}

func splitComma(s string) []string {
	var res []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			res = append(res, s[start:i])
			start = i + 1
		}
	}
	return res
}

func TestDescribe(t *testing.T) {
	b, f := newTestSystem(t, nil)
	id, err := b.Issue(t.Context(), shSpec("a", "true"))
	require.NoError(t, err)
	sid, _ := b.BackingID(id)
	rec, err := b.Describe(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, sid, rec["JobId"])
	require.Equal(t, "localhost", rec["NodeList"])
	require.Equal(t, []string{"show", "job", "--oneliner", sid}, f.lastArgs("scontrol"))

	_, err = b.Describe(t.Context(), 999)
	require.ErrorIs(t, err, ErrUnknownJob)
	f.purge(sid, true)
	_, err = b.Describe(t.Context(), id)
	require.ErrorIs(t, err, ErrUnknownJob)
}

// slurmdbd may name a just-ended job "allocation" for a moment: a name from
// accounting must not make an adopted job Lost.
func TestAdoptFromAccountingIgnoresName(t *testing.T) {
	b, f := newTestSystem(t, nil)
	f.add("6000", "allocation", "RUNNING")
	f.set("6000", "FAILED", 2<<8, "0:05")
	f.purge("6000", true)
	id, err := b.Adopt(t.Context(), shSpec("j", "true"), "6000")
	require.NoError(t, err)
	fin := waitOne(t, b)
	require.Equal(t, id, fin.ID)
	require.Equal(t, 2, fin.ExitCode)
	require.Equal(t, batchsystem.Failed, fin.Reason)
}

func TestScancelRetriesTransientErrors(t *testing.T) {
	b, f := newTestSystem(t, nil)
	b.retryDelay = time.Millisecond
	id, err := b.Issue(t.Context(), shSpec("a", "sleep 1000"))
	require.NoError(t, err)
	sid, _ := b.BackingID(id)
	f.set(sid, "RUNNING", 0, "0:01")
	f.mu.Lock()
	f.failTimes["scancel"] = 2
	f.mu.Unlock()
	require.NoError(t, b.Kill(t.Context(), []batchsystem.ID{id}))
	require.Equal(t, 3, f.count("scancel"), "two failures, then the cancel that worked")
}

func TestUnreadableRunTimeIsNotCenturies(t *testing.T) {
	b, f := newTestSystem(t, nil)
	id, err := b.Issue(t.Context(), shSpec("a", "true"))
	require.NoError(t, err)
	sid, _ := b.BackingID(id)
	f.set(sid, "RUNNING", 0, "INVALID")
	waitPolls(t, b, 2)
	running, err := b.Running(t.Context())
	require.NoError(t, err)
	require.Contains(t, running, id)
	require.Less(t, running[id], time.Hour)
}
