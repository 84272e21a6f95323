package gridengine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// waitPolls returns after the poller has run n more polls.
func waitPolls(t *testing.T, b *BatchSystem, n int64) {
	t.Helper()
	target := b.polls.Load() + n
	require.Eventually(t, func() bool { return b.polls.Load() >= target }, 30*time.Second, time.Millisecond)
}

func requireNothing(t *testing.T, b *BatchSystem) {
	t.Helper()
	f, err := b.WaitFinished(t.Context(), 0)
	require.NoError(t, err)
	require.Nil(t, f, "nothing is reported")
}

func TestLifecycle(t *testing.T) {
	b, f := newTestSystem(t, nil)
	id, err := b.Issue(t.Context(), shSpec("a", "true"))
	require.NoError(t, err)
	require.NotZero(t, id)
	number, ok := b.BackingID(id)
	require.True(t, ok)
	require.Equal(t, "100", number)

	waitPolls(t, b, 2)
	require.Equal(t, "Grid Engine job 100 is qw (waiting)", b.SchedulingStatus(id))
	running, err := b.Running(t.Context())
	require.NoError(t, err)
	require.Empty(t, running, "a waiting job is not running")

	f.setState(number, "r")
	f.mu.Lock()
	f.jobs[number].start = time.Now().Add(-65 * time.Second).Truncate(time.Second)
	f.mu.Unlock()
	waitPolls(t, b, 2)
	running, err = b.Running(t.Context())
	require.NoError(t, err)
	require.GreaterOrEqual(t, running[id], 65*time.Second, "run time counts from qstat's start time")
	require.Empty(t, b.SchedulingStatus(id))
	requireNothing(t, b)

	f.end(number, 0, 0, "", 2*time.Minute)
	fin := waitOne(t, b)
	require.Equal(t, id, fin.ID)
	require.Equal(t, 0, fin.ExitCode)
	require.Equal(t, batchsystem.Finished, fin.Reason)
	require.Equal(t, number, fin.BackingID)
	require.Equal(t, 2*time.Minute+time.Second/2, fin.WallTime)

	issued, err := b.Issued(t.Context())
	require.NoError(t, err)
	require.Empty(t, issued)
	_, ok = b.BackingID(id)
	require.False(t, ok)
	requireNothing(t, b)
}

func TestFinishedFromAccounting(t *testing.T) {
	b, f := newTestSystem(t, nil)
	cases := []struct {
		failed, exit int
		text         string
		walltime     time.Duration
		code         int
		reason       batchsystem.ExitReason
		message      string
	}{
		{0, 3, "", 0, 3, batchsystem.Failed, "exited 3"},
		{0, 137, "", 0, 137, batchsystem.Failed, "exited 137 (signal 9)"},
		{37, 137, "qmaster enforced h_rt, h_cpu, or h_vmem limit", 2 * time.Second, 137, batchsystem.Killed, "killed at its h_rt time limit of 0:00:02"},
		{37, 137, "qmaster enforced h_rt, h_cpu, or h_vmem limit", 0, 137, batchsystem.Killed, "killed for exceeding a limit (failed 37"},
		{100, 137, "assumedly after job", 0, 137, batchsystem.Killed, "killed by signal 9 (failed 100: assumedly after job"},
		{28, 0, "changing into working directory", 0, batchsystem.ExitUnavailable, batchsystem.Error, "could not run (failed 28: changing into working directory)"},
		{30, 100, "application error returned", 0, 100, batchsystem.Failed, "exited 100 (failed 30"},
	}
	byID := map[batchsystem.ID]int{}
	for i, c := range cases {
		spec := shSpec(fmt.Sprint(i), "true")
		spec.Requirements.Walltime = c.walltime
		id, err := b.Issue(t.Context(), spec)
		require.NoError(t, err)
		number, _ := b.BackingID(id)
		f.end(number, c.failed, c.exit, c.text, 3*time.Second)
		byID[id] = i
	}
	for range cases {
		fin := waitOne(t, b)
		c := cases[byID[fin.ID]]
		require.Equal(t, c.code, fin.ExitCode, c)
		require.Equal(t, c.reason, fin.Reason, c)
		require.Contains(t, fin.Message, c.message)
		require.Equal(t, 3*time.Second+time.Second/2, fin.WallTime)
	}
	requireNothing(t, b)
}

// The qmaster writes accounting records in batches: a job that left qstat
// without a record yet stays issued, not running, until qacct has it.
func TestAccountingLag(t *testing.T) {
	b, f := newTestSystem(t, nil)
	id, err := b.Issue(t.Context(), shSpec("a", "exit 4"))
	require.NoError(t, err)
	number, _ := b.BackingID(id)
	f.setState(number, "r")
	waitPolls(t, b, 2)
	f.vanish(number)
	waitPolls(t, b, 3)
	issued, err := b.Issued(t.Context())
	require.NoError(t, err)
	require.Equal(t, []batchsystem.ID{id}, issued, "a job that left qstat is issued until accounting says how it ended")
	running, err := b.Running(t.Context())
	require.NoError(t, err)
	require.Empty(t, running)
	require.Contains(t, b.SchedulingStatus(id), "waiting for its accounting record")
	requireNothing(t, b)
	require.Positive(t, f.count("qacct"))

	f.end(number, 0, 4, "", time.Second)
	fin := waitOne(t, b)
	require.Equal(t, 4, fin.ExitCode)
	args := f.lastArgs("qacct")
	require.Equal(t, "-b", args[0], "qacct always gets a start time: %q", args)
	require.Equal(t, []string{"-j", "gaffer_*"}, args[2:], "one query for all of this BatchSystem's jobs")
}

// A job with no accounting record AccountingWait after it left qstat
// (deleted before it started, or accounting off) is reported lost.
func TestNoAccountingRecordIsLost(t *testing.T) {
	b, f := newTestSystem(t, func(o *Options) { o.AccountingWait = 50 * time.Millisecond })
	id, err := b.Issue(t.Context(), shSpec("a", "true"))
	require.NoError(t, err)
	number, _ := b.BackingID(id)
	waitPolls(t, b, 2)
	f.vanish(number)
	fin := waitOne(t, b)
	require.Equal(t, id, fin.ID)
	require.Equal(t, batchsystem.Lost, fin.Reason)
	require.Equal(t, batchsystem.ExitUnavailable, fin.ExitCode)
	require.Contains(t, fin.Message, "qacct has no record")
}

func TestAccountingIntervalLimitsQacct(t *testing.T) {
	const every = 100 * time.Millisecond
	b, f := newTestSystem(t, func(o *Options) { o.AccountingInterval = every })
	id, err := b.Issue(t.Context(), shSpec("a", "true"))
	require.NoError(t, err)
	number, _ := b.BackingID(id)
	waitPolls(t, b, 2)
	f.vanish(number)
	start := time.Now()
	waitPolls(t, b, 60) // 60 polls of 5 ms: at least 300 ms
	elapsed := time.Since(start)
	require.LessOrEqual(t, int64(f.count("qacct")), int64(elapsed/every)+2, "qacct at most once per AccountingInterval")
	require.Positive(t, f.count("qacct"))
}

func TestAccountingNone(t *testing.T) {
	b, f := newTestSystem(t, func(o *Options) { o.Accounting = AccountingNone })
	id, err := b.Issue(t.Context(), shSpec("a", "true"))
	require.NoError(t, err)
	number, _ := b.BackingID(id)
	waitPolls(t, b, 2)
	f.end(number, 0, 0, "", time.Second)
	fin := waitOne(t, b)
	require.Equal(t, id, fin.ID)
	require.Equal(t, batchsystem.ExitUnavailable, fin.ExitCode, "without accounting the status is unknown")
	require.Zero(t, f.count("qacct"))
}

// A job in error state (Eqw) stays in qstat until someone deletes it: the
// adapter reports it with Grid Engine's reason and deletes it.
func TestErrorStateIsReportedAndDeleted(t *testing.T) {
	b, f := newTestSystem(t, nil)
	id, err := b.Issue(t.Context(), shSpec("a", "true"))
	require.NoError(t, err)
	number, _ := b.BackingID(id)
	f.mu.Lock()
	f.jobs[number].state = "Eqw"
	f.jobs[number].errText = "12/04/2026 19:02:39 [0:3831]: error: can't chdir to /nonexistent/wd: No such file or directory"
	f.mu.Unlock()
	fin := waitOne(t, b)
	require.Equal(t, id, fin.ID)
	require.Equal(t, batchsystem.Error, fin.Reason)
	require.Equal(t, batchsystem.ExitUnavailable, fin.ExitCode)
	require.Contains(t, fin.Message, "error state (Eqw)")
	require.Contains(t, fin.Message, "can't chdir to /nonexistent/wd")
	require.Equal(t, []string{number}, f.lastArgs("qdel"))
	f.mu.Lock()
	require.Empty(t, f.jobs[number].state, "deleted")
	f.mu.Unlock()
	_, err = b.Issue(t.Context(), shSpec("keeps the poller busy", "true"))
	require.NoError(t, err)
	waitPolls(t, b, 3)
	require.Equal(t, 1, f.count("qdel"), "deleted once")
	requireNothing(t, b)
}

// A qdel of a job in error state that fails is tried again on the next
// poll: the job must not be left in qstat.
func TestErrorStateDeletionIsRetried(t *testing.T) {
	b, f := newTestSystem(t, func(o *Options) { o.SubmitRetries = -1 })
	id, err := b.Issue(t.Context(), shSpec("a", "true"))
	require.NoError(t, err)
	number, _ := b.BackingID(id)
	f.mu.Lock()
	f.jobs[number].state = "Eqw"
	f.failTimes["qdel"] = 1
	f.mu.Unlock()
	require.Equal(t, batchsystem.Error, waitOne(t, b).Reason)
	require.Eventually(t, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.jobs[number].state == ""
	}, 10*time.Second, time.Millisecond)
	require.Equal(t, 2, f.count("qdel"))
}

func TestQstatFailureChangesNothing(t *testing.T) {
	b, f := newTestSystem(t, nil)
	id, err := b.Issue(t.Context(), shSpec("a", "true"))
	require.NoError(t, err)
	number, _ := b.BackingID(id)
	f.setState(number, "r")
	waitPolls(t, b, 2)
	for _, broken := range []func(){
		func() {
			f.fail["qstat"] = &CommandError{Name: "qstat", ExitCode: 1, Stderr: "error: unable to contact qmaster using port 6444 on host \"vm\""}
		},
		func() { f.qstatOut = []byte("<?xml version='1.0'?>\n<job_info><queue_info><job_list><JB_job_number>1") }, // cut short
		func() { f.qstatOut = []byte("") },
	} {
		f.mu.Lock()
		broken()
		f.mu.Unlock()
		f.end(number, 0, 0, "", time.Second)
		waitPolls(t, b, 3)
		running, err := b.Running(t.Context())
		require.NoError(t, err)
		require.Contains(t, running, id, "a failed or unreadable listing keeps the last known state")
		require.Zero(t, f.count("qacct"), "it says nothing about which jobs are gone")
		requireNothing(t, b)
		f.mu.Lock()
		delete(f.fail, "qstat")
		f.qstatOut = nil
		f.jobs[number].state = "r"
		f.mu.Unlock()
		waitPolls(t, b, 2)
	}
	f.end(number, 0, 0, "", time.Second)
	require.Equal(t, id, waitOne(t, b).ID)
}

// A job submitted while a qstat runs may be missing from its listing:
// that listing must not end it.
func TestJobSubmittedDuringQstatIsNotGone(t *testing.T) {
	b, f := newTestSystem(t, func(o *Options) { o.Accounting = AccountingNone })
	first, err := b.Issue(t.Context(), shSpec("first", "sleep 100"))
	require.NoError(t, err)
	fnumber, _ := b.BackingID(first)
	f.setState(fnumber, "r")
	waitPolls(t, b, 2)

	var once sync.Once
	submitted := make(chan batchsystem.ID, 1)
	f.mu.Lock()
	f.beforeQstat = func() {
		// The listing is taken now; a job submitted after this is absent.
		f.mu.Lock()
		snapshot := f.qstatXML()
		f.mu.Unlock()
		once.Do(func() {
			id, err := b.Issue(context.Background(), shSpec("second", "sleep 100"))
			if err == nil {
				submitted <- id
			}
		})
		f.mu.Lock()
		f.qstatOut = snapshot
		f.mu.Unlock()
	}
	f.mu.Unlock()
	second := <-submitted
	waitPolls(t, b, 2)
	f.mu.Lock()
	f.beforeQstat, f.qstatOut = nil, nil
	f.mu.Unlock()
	waitPolls(t, b, 2)
	requireNothing(t, b)
	issued, err := b.Issued(t.Context())
	require.NoError(t, err)
	require.ElementsMatch(t, []batchsystem.ID{first, second}, issued)
}

// A rescheduled job leaves the running states and comes back: it is not
// reported in between.
func TestRescheduledJobIsNotReported(t *testing.T) {
	b, f := newTestSystem(t, nil)
	id, err := b.Issue(t.Context(), shSpec("a", "true"))
	require.NoError(t, err)
	number, _ := b.BackingID(id)
	f.setState(number, "r")
	waitPolls(t, b, 2)
	f.mu.Lock()
	f.jobs[number].acct = &acctRecord{Number: number, Name: f.jobs[number].name, Failed: failedReschedule, FailedText: "rescheduling", Exit: 99, Started: true}
	f.jobs[number].state = "Rq"
	f.mu.Unlock()
	waitPolls(t, b, 3)
	require.Contains(t, b.SchedulingStatus(id), "Rq (rescheduled, waiting)")
	f.vanish(number) // and a record of failure 25 is not how it ended
	waitPolls(t, b, 3)
	requireNothing(t, b)
	f.setState(number, "Rr")
	waitPolls(t, b, 2)
	running, _ := b.Running(t.Context())
	require.Contains(t, running, id)
	f.end(number, 0, 0, "", time.Second)
	fin := waitOne(t, b)
	require.Equal(t, 0, fin.ExitCode)
}

func TestKill(t *testing.T) {
	b, f := newTestSystem(t, nil)
	long, err := b.Issue(t.Context(), shSpec("long", "sleep 1000"))
	require.NoError(t, err)
	done, err := b.Issue(t.Context(), shSpec("done", "true"))
	require.NoError(t, err)
	waiting, err := b.Issue(t.Context(), shSpec("waiting", "true"))
	require.NoError(t, err)
	lnumber, _ := b.BackingID(long)
	dnumber, _ := b.BackingID(done)
	wnumber, _ := b.BackingID(waiting)
	f.setState(lnumber, "r")
	f.end(dnumber, 0, 0, "", time.Second)
	require.Equal(t, done, waitOne(t, b).ID)

	require.NoError(t, b.Kill(t.Context(), []batchsystem.ID{long, waiting, done, 999}))
	require.Equal(t, []string{lnumber + "," + wnumber}, f.lastArgs("qdel"), "one qdel for all")
	issued, err := b.Issued(t.Context())
	require.NoError(t, err)
	require.Empty(t, issued)
	running, err := b.Running(t.Context())
	require.NoError(t, err)
	require.Empty(t, running)
	// A later job is reported, and the killed ones never are.
	after, err := b.Issue(t.Context(), shSpec("after", "true"))
	require.NoError(t, err)
	anumber, _ := b.BackingID(after)
	f.end(anumber, 0, 0, "", time.Second)
	require.Equal(t, after, waitOne(t, b).ID)
	fin, err := b.WaitFinished(t.Context(), 100*time.Millisecond)
	require.NoError(t, err)
	require.Nil(t, fin, "killed jobs are never reported")
}

// A deleted running job is listed as "dr" until its processes are gone:
// Kill returns only then, since it promises the job no longer runs.
func TestKillWaitsForQstat(t *testing.T) {
	b, f := newTestSystem(t, nil)
	f.linger = true
	id, err := b.Issue(t.Context(), shSpec("a", "sleep 1000"))
	require.NoError(t, err)
	number, _ := b.BackingID(id)
	f.setState(number, "r")
	errc := make(chan error, 1)
	go func() { errc <- b.Kill(context.Background(), []batchsystem.ID{id}) }()
	waitPolls(t, b, 3)
	select {
	case err := <-errc:
		t.Fatalf("Kill returned while qstat still listed the job: %v", err)
	default:
	}
	f.vanish(number)
	require.NoError(t, <-errc)
}

func TestKillTimeout(t *testing.T) {
	b, f := newTestSystem(t, func(o *Options) { o.KillTimeout = 50 * time.Millisecond })
	f.linger = true
	id, err := b.Issue(t.Context(), shSpec("a", "sleep 1000"))
	require.NoError(t, err)
	number, _ := b.BackingID(id)
	f.setState(number, "r")
	err = b.Kill(t.Context(), []batchsystem.ID{id})
	require.ErrorIs(t, err, ErrKillTimeout)
	require.Contains(t, err.Error(), "Grid Engine job "+number)
}

func TestQdelRetriesTransientErrors(t *testing.T) {
	b, f := newTestSystem(t, nil)
	id, err := b.Issue(t.Context(), shSpec("a", "sleep 1000"))
	require.NoError(t, err)
	number, _ := b.BackingID(id)
	f.setState(number, "r")
	f.mu.Lock()
	f.failTimes["qdel"] = 2
	f.mu.Unlock()
	require.NoError(t, b.Kill(t.Context(), []batchsystem.ID{id}))
	require.Equal(t, 3, f.count("qdel"), "two failures, then the deletion that worked")
}

func TestShutdownDeletesEverything(t *testing.T) {
	b, f := newTestSystem(t, nil)
	var numbers []string
	for i := range 5 {
		id, err := b.Issue(t.Context(), shSpec(fmt.Sprint(i), "sleep 1000"))
		require.NoError(t, err)
		n, _ := b.BackingID(id)
		numbers = append(numbers, n)
		if i%2 == 0 {
			f.setState(n, "r")
		}
	}
	require.NoError(t, b.Shutdown(t.Context()))
	f.mu.Lock()
	for _, n := range numbers {
		require.Empty(t, f.jobs[n].state, n)
	}
	f.mu.Unlock()
	_, err := b.Issue(t.Context(), shSpec("late", "true"))
	require.ErrorIs(t, err, batchsystem.ErrShutdown)
	_, err = b.Issued(t.Context())
	require.ErrorIs(t, err, batchsystem.ErrShutdown)
	require.ErrorIs(t, b.Shutdown(t.Context()), batchsystem.ErrShutdown)
}

func TestInsufficientResources(t *testing.T) {
	b, f := newTestSystem(t, nil)
	for resource, mod := range map[string]func(*batchsystem.Requirements){
		"cores":  func(r *batchsystem.Requirements) { r.Cores = 64 },
		"memory": func(r *batchsystem.Requirements) { r.Memory = 1 << 40 },
	} {
		spec := shSpec("huge-"+resource, "true")
		mod(&spec.Requirements)
		_, err := b.Issue(t.Context(), spec)
		require.ErrorIs(t, err, batchsystem.ErrInsufficientResources)
		var ire *batchsystem.InsufficientResourcesError
		require.True(t, errors.As(err, &ire))
		require.Equal(t, resource, ire.Resource, "%v", err)
		require.Equal(t, "huge-"+resource, ire.JobID)
		require.Contains(t, err.Error(), "no suitable queues")
	}
	spec := shSpec("gpu", "true")
	spec.Requirements.Accelerators = []batchsystem.Accelerator{{Kind: "gpu", Count: 2}}
	_, err := b.Issue(t.Context(), spec)
	require.ErrorIs(t, err, batchsystem.ErrInsufficientResources, "no GPUResource: GPUs are refused")
	require.Zero(t, len(f.jobs), "nothing was submitted")
}

func TestSubmitRetriesTransientErrors(t *testing.T) {
	b, f := newTestSystem(t, nil)
	f.mu.Lock()
	f.failTimes["qsub"] = 2
	f.mu.Unlock()
	id, err := b.Issue(t.Context(), shSpec("a", "true"))
	require.NoError(t, err)
	require.NotZero(t, id)
	require.Equal(t, 3, f.count("qsub"))

	f.mu.Lock()
	f.failTimes["qsub"] = 100
	f.mu.Unlock()
	_, err = b.Issue(t.Context(), shSpec("b", "true"))
	var ce *CommandError
	require.ErrorAs(t, err, &ce)
	require.Contains(t, err.Error(), "job b")
	require.Equal(t, 3+4, f.count("qsub"), "1 try + 3 retries")
}

func TestAdopt(t *testing.T) {
	b, f := newTestSystem(t, nil)
	spec := shSpec("j1", "true")
	f.add("5000", jobName("gaffer", spec), "r")
	f.add("5001", "someone_else", "r")

	id, err := b.Adopt(t.Context(), spec, "5000")
	require.NoError(t, err)
	_, err = b.Adopt(t.Context(), spec, "5000")
	require.ErrorIs(t, err, ErrAlreadyTracked)
	_, err = b.Adopt(t.Context(), spec, "12.3")
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
	f.end("5000", 0, 0, "", 3*time.Minute)
	fin = waitOne(t, b)
	require.Equal(t, id, fin.ID)
	require.Equal(t, 0, fin.ExitCode)
	f.mu.Lock()
	require.Equal(t, "r", f.jobs["5001"].state, "never touched")
	f.mu.Unlock()
	require.Zero(t, f.count("qdel"))
}

// An adopted job that ended while no leader ran is found in accounting,
// under our name only.
func TestAdoptFromAccounting(t *testing.T) {
	b, f := newTestSystem(t, func(o *Options) { o.AccountingWait = 200 * time.Millisecond })
	spec := shSpec("j", "true")
	f.add("6000", jobName("gaffer", spec), "")
	f.end("6000", 0, 2, "", 5*time.Second)
	f.add("6001", "gaffer_test_stranger", "")
	f.end("6001", 0, 0, "", 5*time.Second)
	id, err := b.Adopt(t.Context(), spec, "6000")
	require.NoError(t, err)
	sid, err := b.Adopt(t.Context(), shSpec("j2", "true"), "6001")
	require.NoError(t, err)
	byID := map[batchsystem.ID]*batchsystem.FinishedJob{}
	for range 2 {
		fin := waitOne(t, b)
		byID[fin.ID] = fin
	}
	require.Equal(t, 2, byID[id].ExitCode)
	require.Equal(t, batchsystem.Failed, byID[id].Reason)
	require.Equal(t, batchsystem.Lost, byID[sid].Reason, "a record under another name is not our job's")
	args := f.lastArgs("qacct")
	from, err := time.ParseInLocation("200601021504.05", args[1], time.Local)
	require.NoError(t, err)
	require.Less(t, from, time.Now().Add(-23*time.Hour), "adopted jobs are searched back AccountingLookback")
}

// An adopted job killed before any poll checked its name is deleted only
// once qstat shows our name under its number.
func TestKillAdoptedWaitsForNameCheck(t *testing.T) {
	b, f := newTestSystem(t, func(o *Options) { o.KillTimeout = 100 * time.Millisecond })
	spec := shSpec("j1", "true")
	f.add("5000", "not_ours", "r")
	f.add("5001", jobName("gaffer", spec), "r")
	f.mu.Lock()
	f.fail["qstat"] = &CommandError{Name: "qstat", ExitCode: 1, Stderr: "error: unable to contact qmaster"}
	f.mu.Unlock()
	stranger, err := b.Adopt(t.Context(), spec, "5000")
	require.NoError(t, err)
	ours, err := b.Adopt(t.Context(), spec, "5001")
	require.NoError(t, err)
	require.ErrorIs(t, b.Kill(t.Context(), []batchsystem.ID{stranger, ours}), ErrKillTimeout, "no poll checked the names")
	require.Zero(t, f.count("qdel"))

	f.mu.Lock()
	delete(f.fail, "qstat")
	f.mu.Unlock()
	require.Eventually(t, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.jobs["5001"].state == ""
	}, 10*time.Second, time.Millisecond, "ours is deleted once its name is checked")
	f.mu.Lock()
	require.Equal(t, "r", f.jobs["5000"].state, "someone else's job survives")
	f.mu.Unlock()
	require.Equal(t, []string{"5001"}, f.lastArgs("qdel"))
}

func TestReasonsReachSchedulingStatus(t *testing.T) {
	b, f := newTestSystem(t, nil)
	b.reasonEvery = 10 * time.Millisecond
	id, err := b.Issue(t.Context(), shSpec("a", "true"))
	require.NoError(t, err)
	number, _ := b.BackingID(id)
	f.mu.Lock()
	f.jobs[number].state = "hqw"
	f.jobs[number].sched = "Job is in hold state"
	f.mu.Unlock()
	require.Eventually(t, func() bool {
		return b.SchedulingStatus(id) == "Grid Engine job 100 is hqw (on hold): Job is in hold state"
	}, 10*time.Second, time.Millisecond, "%q", b.SchedulingStatus(id))
}

// TestOneQstatPerInterval issues many jobs and hammers the read calls from
// many goroutines: qstat runs once per poll whatever the number of jobs,
// and polls never come closer than PollInterval. When they all leave qstat
// at once, one qacct covers them.
func TestOneQstatPerInterval(t *testing.T) {
	const interval = 20 * time.Millisecond
	b, f := newTestSystem(t, func(o *Options) { o.PollInterval = interval })
	const n = 2500
	var numbers []string
	for i := range n {
		id, err := b.Issue(t.Context(), shSpec(fmt.Sprint(i), "true"))
		require.NoError(t, err)
		num, _ := b.BackingID(id)
		numbers = append(numbers, num)
	}
	start := time.Now()
	polls0, qstat0 := b.polls.Load(), f.count("qstat -xml")
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for range 16 {
		wg.Go(func() {
			k := 0
			for ctx.Err() == nil {
				_, _ = b.Running(ctx)
				_, _ = b.Issued(ctx)
				_, _ = b.WaitFinished(ctx, 0)
				b.SchedulingStatus(1)
				k++
			}
			mu.Lock()
			total += k
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	polls := b.polls.Load() - polls0 + 1 // a poll may have been under way at start
	qstats := int64(f.count("qstat -xml") - qstat0)
	t.Logf("%d jobs, %d caller rounds, %v: %d polls, %d qstat -xml runs, %d qstat -j runs", n, total, elapsed, polls, qstats, f.count("qstat -j"))
	require.Greater(t, int64(total), 10*polls, "callers asked far more often than the poller queried")
	require.LessOrEqual(t, qstats, polls, "one qstat listing per poll, for 2,500 jobs")
	require.LessOrEqual(t, f.count("qstat -j"), 1, "the waiting jobs' reasons: one qstat -j, for the first poll (then every 30 s)")
	require.LessOrEqual(t, polls, int64(elapsed/interval)+2, "no two polls within one interval")
	require.Zero(t, f.count("qacct"), "qstat listed every job")

	for _, num := range numbers {
		f.end(num, 0, 0, "", time.Second)
	}
	polls0 = b.polls.Load()
	for range n {
		waitOne(t, b)
	}
	require.LessOrEqual(t, int64(f.count("qacct")), b.polls.Load()-polls0+1, "one qacct per poll at most, for 2,500 jobs")
}

func TestOptions(t *testing.T) {
	for _, o := range []Options{
		{ExtraArgs: []string{"-N", "x"}},
		{ExtraArgs: []string{"-pe", "mpi", "4"}},
		{ExtraArgs: []string{"-l", "arch=lx-amd64,h_rt=10"}},
		{ExtraArgs: []string{"-l", "mem_free=1G"}},
		{ExtraArgs: []string{"-V"}},
		{NamePrefix: "has space"},
		{NamePrefix: "9lives"},
		{NamePrefix: strings.Repeat("p", 41)},
		{MemoryResource: "mem,free"},
		{Accounting: "sometimes"},
		{Env: map[string]string{"BAD-NAME": "x"}},
		{Queue: "all.q two"},
	} {
		_, err := New(o)
		require.ErrorIs(t, err, ErrBadOption, "%+v", o)
	}
	var ce *ConflictingArgError
	_, err := New(Options{ExtraArgs: []string{"-l", "h_rt=10"}})
	require.ErrorAs(t, err, &ce)
	require.Contains(t, ce.Use, "Walltime")
	b, err := New(Options{ExtraArgs: []string{"-P", "lab", "-l", "arch=lx-amd64"}, IgnoreMemory: true})
	require.NoError(t, err)
	require.NoError(t, b.Shutdown(t.Context()))
}

// A job that wrote its status file is reported from it, without qacct,
// and the file is removed; one whose file is unfinished is left to qacct.
func TestStatusFile(t *testing.T) {
	b, f := newTestSystem(t, nil)
	dir := t.TempDir()
	spec := shSpec("a", "exit 3")
	spec.Dir = dir
	id, err := b.Issue(t.Context(), spec)
	require.NoError(t, err)
	number, _ := b.BackingID(id)
	status := filepath.Join(dir, ".gridengine-exit."+number)
	require.NoError(t, os.WriteFile(status, []byte("exit 3 start 1796032711 end 1796032713\n"), 0o644))
	f.vanish(number)
	fin := waitOne(t, b)
	require.Equal(t, id, fin.ID)
	require.Equal(t, 3, fin.ExitCode)
	require.Equal(t, batchsystem.Failed, fin.Reason)
	require.Equal(t, 2*time.Second+time.Second/2, fin.WallTime)
	require.Zero(t, f.count("qacct"), "the status file said it all")
	require.NoFileExists(t, status)

	spec.JobID = "b"
	id, err = b.Issue(t.Context(), spec)
	require.NoError(t, err)
	number, _ = b.BackingID(id)
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".gridengine-exit."+number), []byte("exit 0 sta"), 0o644))
	f.end(number, 37, 137, "qmaster enforced h_rt, h_cpu, or h_vmem limit", time.Second)
	fin = waitOne(t, b)
	require.Equal(t, batchsystem.Killed, fin.Reason, "an unfinished status file is no status: qacct tells")
	require.Positive(t, f.count("qacct"))
}
