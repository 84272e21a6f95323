package slurm

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/batchsystem"
)

// The files in testdata/ were recorded from the one-node cluster that
// scripts/slurm-cluster.sh starts (Slurm 22.05.8, slurmdbd accounting), with
// jobs 26-33: a time limit hit (26), success (27), exit 3 (28), a script
// that SIGKILLed itself (29), a running job (30), a held job whose name holds
// "|" and a space (31), a job cancelled while pending (32) and one cancelled
// while running (33).

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return string(b)
}

func TestParseSbatch(t *testing.T) {
	id, err := parseSbatch(readTestdata(t, "sbatch-parsable.txt"))
	require.NoError(t, err)
	require.Equal(t, "34", id)

	id, err = parseSbatch("12345;cluster2\n")
	require.NoError(t, err)
	require.Equal(t, "12345", id, "federated clusters append ;cluster")

	for _, bad := range []string{"", "\n", "Submitted batch job 12", "12_3", "-1", "1 2"} {
		_, err := parseSbatch(bad)
		require.ErrorIs(t, err, ErrParse, "input %q", bad)
	}
}

func TestParseSqueueRecorded(t *testing.T) {
	st, errs := parseSqueue(readTestdata(t, "squeue.txt"))
	require.Empty(t, errs)
	byID := map[string]jobStatus{}
	for _, s := range st {
		byID[s.SlurmID] = s
	}
	require.Len(t, byID, 8, "the unknown ID 99999 is simply absent")

	type want struct {
		state   string
		code    int
		reason  batchsystem.ExitReason
		elapsed time.Duration
	}
	for id, w := range map[string]want{
		"26": {"TIMEOUT", 128 + 15, batchsystem.Killed, 62 * time.Second},
		"27": {"COMPLETED", 0, batchsystem.Finished, time.Second},
		"28": {"FAILED", 3, batchsystem.Failed, 0},
		"29": {"FAILED", 128 + 9, batchsystem.Failed, 0},
		"32": {"CANCELLED", batchsystem.ExitUnavailable, batchsystem.Killed, 0},
		"33": {"CANCELLED", 128 + 15, batchsystem.Killed, 4 * time.Second},
	} {
		s := byID[id]
		require.Equal(t, w.state, s.State, id)
		require.True(t, s.HasTimes, id)
		require.Equal(t, w.elapsed, s.Elapsed, id)
		code, reason := exitFor(s)
		require.Equal(t, w.code, code, id)
		require.Equal(t, w.reason, reason, id)
	}
	require.Equal(t, "RUNNING", byID["30"].State)
	require.Equal(t, 75*time.Second, byID["30"].Elapsed)
	held := byID["31"]
	require.Equal(t, "PENDING", held.State)
	require.Equal(t, "rec held|odd name", held.Name)
	require.Equal(t, "JobHeldUser", held.Reason)
	require.Equal(t, "BeginTime", byID["32"].Reason)
}

func TestParseSqueueBadLines(t *testing.T) {
	in := "abc\x1fRUNNING\x1f0\x1f0:01\x1f\n" + // bad ID
		"12\x1f\x1f0\x1f0:01\x1f\n" + // no state
		"13\x1fRUNNING\n" + // too few fields
		"14\x1fRUNNING\x1fnope\x1fforever\x1fname\x1fNone\x1f\n" // odd numbers: kept, unknown
	st, errs := parseSqueue(in)
	require.Len(t, errs, 3)
	require.Len(t, st, 1)
	require.Equal(t, "14", st[0].SlurmID)
	require.Equal(t, -1, st[0].Exit)
	require.False(t, st[0].HasTimes)
}

func TestParseSacctRecorded(t *testing.T) {
	for _, file := range []string{"sacct-allocations.txt", "sacct-steps.txt"} {
		st, errs := parseSacct(readTestdata(t, file))
		require.Empty(t, errs, file)
		require.Len(t, st, 8, "%s: steps are skipped", file)
		byID := map[string]jobStatus{}
		for _, s := range st {
			byID[s.SlurmID] = s
		}
		code, reason := exitFor(byID["28"])
		require.Equal(t, 3, code)
		require.Equal(t, batchsystem.Failed, reason)

		code, reason = exitFor(byID["26"])
		require.Equal(t, batchsystem.ExitUnavailable, code, "TIMEOUT with 0:0 is never success")
		require.Equal(t, batchsystem.Killed, reason)
		require.Equal(t, 62*time.Second, byID["26"].Elapsed)

		code, _ = exitFor(byID["29"])
		require.Equal(t, 137, code, "signal 9 is 128+9")

		require.Equal(t, "CANCELLED", byID["33"].State, "'CANCELLED by 0' is CANCELLED")
		require.Equal(t, "rec held|odd name", byID["31"].Name)
		code, reason = exitFor(byID["27"])
		require.Equal(t, 0, code)
		require.Equal(t, batchsystem.Finished, reason)
	}
}

func TestParseSacctRequeuedLastWins(t *testing.T) {
	st, errs := parseSacct("7\x1fNODE_FAIL\x1f0:0\x1f00:01:00\x1fx\n7\x1fCOMPLETED\x1f0:0\x1f00:02:00\x1fx\n")
	require.Empty(t, errs)
	require.Len(t, st, 1)
	require.Equal(t, "COMPLETED", st[0].State)
}

func TestParseScontrolRecorded(t *testing.T) {
	recs := parseScontrol(readTestdata(t, "scontrol-show-job-o.txt"))
	require.Len(t, recs, 8)
	multi := parseScontrol(readTestdata(t, "scontrol-show-job.txt"))
	require.Len(t, multi, 2)
	require.Equal(t, "rec held|odd name", multi[1]["JobName"], "a value with spaces is kept whole")

	st, err := scontrolStatus(multi[0])
	require.NoError(t, err)
	require.Equal(t, "28", st.SlurmID)
	require.Equal(t, "FAILED", st.State)
	require.Equal(t, 3, st.Exit)
	require.Equal(t, "NonZeroExitCode", st.Reason)

	one := parseScontrol(readTestdata(t, "scontrol-show-job-timeout.txt"))
	require.Len(t, one, 1)
	st, err = scontrolStatus(one[0])
	require.NoError(t, err)
	require.Equal(t, "TIMEOUT", st.State)
	require.Equal(t, 15, st.Signal)
	require.Equal(t, 62*time.Second, st.Elapsed)

	require.Empty(t, parseScontrol("No jobs in the system\n"))
	_, err = scontrolStatus(map[string]string{"JobId": "x"})
	require.ErrorIs(t, err, ErrParse)
}

func TestParseDuration(t *testing.T) {
	// Toil's parse_slurm_time cases, plus sacct's zero-padded and
	// fractional forms.
	for in, want := range map[string]time.Duration{
		"5":            5 * time.Minute,
		"5:30":         5*time.Minute + 30*time.Second,
		"1:30:00":      90 * time.Minute,
		"3-0":          72 * time.Hour,
		"1-12":         36 * time.Hour,
		"1-6:30":       30*time.Hour + 30*time.Minute,
		"1-02:30:45":   26*time.Hour + 30*time.Minute + 45*time.Second,
		"0":            0,
		"0:00":         0,
		"00:01:02":     62 * time.Second,
		"00:00:01.250": 1250 * time.Millisecond,
		" 1:15 ":       75 * time.Second,
	} {
		got, ok := parseDuration(in)
		require.True(t, ok, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "UNLIMITED", "INVALID", "N/A", "NOT_SET", "1:2:3:4", "-5", "1-", "a:b", "1.5", "5:", "99999999999"} {
		_, ok := parseDuration(in)
		require.False(t, ok, "%q", in)
	}
}

func TestFormatDuration(t *testing.T) {
	require.Equal(t, "0-00:00:01", formatDuration(0))
	require.Equal(t, "0-00:00:02", formatDuration(1500*time.Millisecond), "rounded up")
	require.Equal(t, "1-02:30:45", formatDuration(26*time.Hour+30*time.Minute+45*time.Second))
	for _, d := range []time.Duration{time.Second, 90 * time.Minute, 49 * time.Hour} {
		back, ok := parseDuration(formatDuration(d))
		require.True(t, ok)
		require.Equal(t, d, back)
	}
}

func TestExitFor(t *testing.T) {
	for _, c := range []struct {
		st     jobStatus
		code   int
		reason batchsystem.ExitReason
	}{
		{jobStatus{State: "COMPLETED", Exit: 0}, 0, batchsystem.Finished},
		{jobStatus{State: "COMPLETED", Exit: -1}, 0, batchsystem.Finished},
		{jobStatus{State: "FAILED", Exit: 5}, 5, batchsystem.Failed},
		{jobStatus{State: "FAILED", Exit: 0, Signal: 11}, 139, batchsystem.Failed},
		{jobStatus{State: "TIMEOUT", Exit: 0}, 255, batchsystem.Killed},
		{jobStatus{State: "OUT_OF_MEMORY", Exit: 0, Signal: 9}, 137, batchsystem.MemLimit},
		{jobStatus{State: "NODE_FAIL", Exit: -1}, 255, batchsystem.Lost},
		{jobStatus{State: "BOOT_FAIL", Exit: 0}, 255, batchsystem.Lost},
		{jobStatus{State: "PREEMPTED", Exit: 0}, 255, batchsystem.Lost},
		{jobStatus{State: "DEADLINE", Exit: 0}, 255, batchsystem.Killed},
		{jobStatus{State: "CANCELLED", Exit: 0, Signal: 15}, 143, batchsystem.Killed},
		{jobStatus{State: "SPECIAL_EXIT", Exit: 2}, 2, batchsystem.Failed},
	} {
		code, reason := exitFor(c.st)
		require.Equal(t, c.code, code, c.st.State)
		require.Equal(t, c.reason, reason, c.st.State)
	}
	for _, s := range []string{"PENDING", "RUNNING", "COMPLETING", "REQUEUED", "SUSPENDED"} {
		ph, known := classify(s)
		require.True(t, known, s)
		require.NotEqual(t, phaseFinished, ph, s)
	}
	ph, known := classify("SOMETHING_NEW")
	require.False(t, known)
	require.Equal(t, phaseWaiting, ph, "an unknown state keeps the job issued")
}
