package gridengine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/batchsystem"
)

// The files in testdata/ were recorded from the one-node cell that
// scripts/gridengine-cluster.sh starts (Son of Grid Engine 8.1.9, Debian
// 12), with jobs 132-149: success (132), a three-task array (133), qsub
// refusals (134-138), a two-slot job with memory (139), exit 3 (140), a
// script that SIGKILLed itself (141), h_rt=0:0:2 hit (142), a running job
// (143), one deleted while running (144, "dr" in the listing), a suspended
// one (145), one in error state for a missing working directory (146),
// one not to start for an hour (147), the same held (148), and one asking
// for 40 slots of 32 (149). 143 and 145-149 were deleted before qacct ran.

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return string(b)
}

func TestParseQsub(t *testing.T) {
	id, err := parseQsub(readTestdata(t, "qsub-terse.txt"))
	require.NoError(t, err)
	require.Equal(t, "132", id)
	_, err = parseQsub(readTestdata(t, "qsub-terse-array.txt"))
	require.ErrorIs(t, err, ErrParse, "array jobs are not ours")
	for _, bad := range []string{"", "\n", `Your job 12 ("STDIN") has been submitted`, "12.1-3:1", "-1", "012", "1 2"} {
		_, err := parseQsub(bad)
		require.ErrorIs(t, err, ErrParse, "input %q", bad)
	}
}

func TestParseQstatXMLRecorded(t *testing.T) {
	jobs, err := parseQstatXML([]byte(readTestdata(t, "qstat-xml.txt")), time.UTC)
	require.NoError(t, err)
	byNumber := map[string]qstatJob{}
	for _, j := range jobs {
		byNumber[j.Number] = j
	}
	require.Len(t, byNumber, 7, "running (143, 144, 145) under queue_info, waiting (146-149) under job_info")
	want := map[string]struct {
		name, state string
		ph          phase
	}{
		"143": {"rec_run", "r", phaseRunning},
		"144": {"rec_deleted", "dr", phaseRunning},
		"145": {"rec_susp", "s", phaseSuspended},
		"146": {"rec_eqw", "Eqw", phaseError},
		"147": {"rec_wait", "qw", phaseWaiting},
		"148": {"rec_held", "hqw", phaseWaiting},
		"149": {"rec_pend_pe", "qw", phaseWaiting},
	}
	for n, w := range want {
		j := byNumber[n]
		require.Equal(t, w.name, j.Name, n)
		require.Equal(t, w.state, j.State, n)
		ph, known := classify(j.State)
		require.True(t, known, n)
		require.Equal(t, w.ph, ph, n)
	}
	require.Equal(t, time.Date(2026, 12, 4, 19, 2, 39, 0, time.UTC), byNumber["143"].Start)
	require.True(t, byNumber["149"].Start.IsZero(), "waiting jobs have no start time")
	require.False(t, byNumber["149"].Submit.IsZero())
	require.Equal(t, 40, byNumber["149"].Slots)

	empty, err := parseQstatXML([]byte(readTestdata(t, "qstat-xml-empty.txt")), time.UTC)
	require.NoError(t, err)
	require.Empty(t, empty, "no jobs is an answer")
}

func TestParseQstatXMLRefusesBrokenListings(t *testing.T) {
	full := readTestdata(t, "qstat-xml.txt")
	for name, in := range map[string]string{
		"cut short":      full[:len(full)/2],
		"nothing":        "",
		"an error":       "error: commlib error: got select error (Connection refused)\n",
		"bad number":     strings.Replace(full, "<JB_job_number>143<", "<JB_job_number>x143<", 1),
		"not a listing":  "<?xml version='1.0'?><other/>",
		"trailing junk":  full + "<job_list>",
		"unclosed entry": "<job_info><job_list><JB_job_number>1</JB_job_number>",
	} {
		_, err := parseQstatXML([]byte(in), time.UTC)
		require.ErrorIs(t, err, ErrParse, name)
	}
}

func TestParseQacctRecorded(t *testing.T) {
	recs, errs := parseQacct(readTestdata(t, "qacct.txt"))
	require.Empty(t, errs)
	byNumber := map[string][]acctRecord{}
	for _, r := range recs {
		byNumber[r.Number] = append(byNumber[r.Number], r)
	}
	require.Len(t, byNumber["133"], 3, "one record per array task")
	type want struct {
		code    int
		reason  batchsystem.ExitReason
		wall    time.Duration
		message string
	}
	for n, w := range map[string]want{
		"132": {0, batchsystem.Finished, 0, "exited 0"},
		"139": {0, batchsystem.Finished, 2 * time.Second, "exited 0"},
		"140": {3, batchsystem.Failed, 0, "exited 3"},
		"141": {137, batchsystem.Killed, 0, "killed by signal 9 (failed 100: assumedly after job"},
		"142": {137, batchsystem.Killed, 3 * time.Second, "killed at its h_rt time limit of 0:00:02 after 3s (failed 37: qmaster enforced h_rt, h_cpu, or h_vmem limit)"},
		"143": {137, batchsystem.Killed, 10 * time.Second, "killed by signal 9"},
		"144": {137, batchsystem.Killed, 4 * time.Second, "killed by signal 9"},
	} {
		require.Len(t, byNumber[n], 1, n)
		r := byNumber[n][0]
		require.True(t, r.Started, n)
		require.True(t, r.HasWall, n)
		require.Equal(t, w.wall, r.Wall, n)
		code, reason, msg := exitFor(r, 2*time.Second)
		require.Equal(t, w.code, code, n)
		require.Equal(t, w.reason, reason, n)
		require.Contains(t, msg, w.message, n)
		require.True(t, r.final(), n)
	}
	require.Equal(t, "rec_ok_pe", byNumber["139"][0].Name)
	require.Equal(t, "-l mem_free=64M -pe smp 2", byNumber["139"][0].Category)
}

func TestParseQacctOdd(t *testing.T) {
	in := "error: ignored before the first record\n" +
		"==============================================================\njobname x\njobnumber abc\nfailed 0\n" +
		"==============================================================\njobname y\njobnumber 7\nfailed lots\n" +
		"==============================================================\njobname z\njobnumber 8\nfailed 25 : rescheduling\nexit_status 99\nstart_time -/-\nru_wallclock 12\n" +
		"==============================================================\njobname w\njobnumber 9\nfailed 0\nexit_status 0\nru_wallclock 1.5s\n"
	recs, errs := parseQacct(in)
	require.Len(t, errs, 2, "a bad job number and a bad failure code")
	require.Len(t, recs, 2)
	require.False(t, recs[0].final(), "failure 25 is a run to be repeated")
	require.False(t, recs[0].Started)
	require.Equal(t, 12*time.Second, recs[0].Wall, "bare seconds from older releases")
	require.Equal(t, 1500*time.Millisecond, recs[1].Wall)
	require.Empty(t, parseQacctNone(t))
}

func parseQacctNone(t *testing.T) []acctRecord {
	recs, errs := parseQacct(readTestdata(t, "qacct-none.stderr"))
	require.Empty(t, errs)
	return recs
}

func TestExitForNeverReportsSuccessForFailures(t *testing.T) {
	for failed := 1; failed <= 100; failed++ {
		if failed == failedReschedule {
			continue
		}
		code, reason, msg := exitFor(acctRecord{Number: "5", Failed: failed, Exit: 0}, 0)
		require.NotZero(t, code, "failed %d", failed)
		require.NotEqual(t, batchsystem.Finished, reason, "failed %d", failed)
		require.Contains(t, msg, "Grid Engine job 5")
	}
}

func TestParseQstatJRecorded(t *testing.T) {
	d := parseQstatJ(readTestdata(t, "qstat-j.txt"))
	require.Len(t, d, 4)
	require.Equal(t, []string{"12/04/2026 19:02:39 [0:3831]: error: can't chdir to /nonexistent/wd: No such file or directory"}, d["146"].Errors)
	require.Equal(t, []string{"Job is in error state"}, d["146"].Sched)
	require.Equal(t, "rec_eqw", d["146"].Name)
	require.Equal(t, []string{"execution time not reached"}, d["147"].Sched)
	require.Equal(t, []string{"Job is in hold state"}, d["148"].Sched)
	require.Equal(t, []string{`cannot run in PE "smp" because it only offers 0 slots`}, d["149"].Sched)
	require.Empty(t, d["149"].Errors)

	multi := parseQstatJ("==============\njob_number: 5\nscheduling info:            queue instance \"all.q@a\" dropped because it is full\n" +
		"                            queue instance \"all.q@b\" dropped because it is disabled\n")
	require.Len(t, multi["5"].Sched, 2, "scheduling info continues on indented lines")
	require.Empty(t, parseQstatJ(readTestdata(t, "qstat-j-unknown.stderr")))
}

func TestParseComplexesRecorded(t *testing.T) {
	cx := parseComplexes(readTestdata(t, "qconf-sc.txt"))
	require.Equal(t, "YES", cx["mem_free"].Consumable, "the test cell makes mem_free consumable")
	require.Equal(t, "NO", cx["h_vmem"].Consumable)
	require.Equal(t, "TIME", cx["h_rt"].Type)
	require.Equal(t, "mf", cx["mem_free"].Shortcut)
	require.NotContains(t, cx, "#name")
}

func TestQdelDone(t *testing.T) {
	require.True(t, qdelDone(readTestdata(t, "qdel.stdout")))
	require.True(t, qdelDone(readTestdata(t, "qdel-mixed.stdout")), "already in deletion, or gone: done")
	require.True(t, qdelDone(`denied: job "12" does not exist`))
	require.False(t, qdelDone(""))
	require.False(t, qdelDone(`denied: job "12" is owned by someone else`))
	require.False(t, qdelDone("error: unable to contact qmaster using port 6444 on host \"vm\""))
	require.False(t, qdelDone("root has deleted job 5\nerror: something else"))
}

func TestFormatHRT(t *testing.T) {
	require.Equal(t, "0:00:01", formatHRT(0))
	require.Equal(t, "0:00:02", formatHRT(1500*time.Millisecond), "rounded up")
	require.Equal(t, "26:30:45", formatHRT(26*time.Hour+30*time.Minute+45*time.Second), "hours are not wrapped into days")
	require.Equal(t, "876000:00:00", formatHRT(time.Duration(1<<62)), "capped")
}

func TestClassify(t *testing.T) {
	for state, want := range map[string]phase{
		"qw": phaseWaiting, "hqw": phaseWaiting, "hRwq": phaseWaiting, "Rq": phaseWaiting,
		"t": phaseRunning, "r": phaseRunning, "Rr": phaseRunning, "hr": phaseRunning, "dr": phaseRunning, "dt": phaseRunning,
		"s": phaseSuspended, "S": phaseSuspended, "T": phaseSuspended, "dS": phaseSuspended,
		"Eqw": phaseError, "Ehqw": phaseError, "EhRqw": phaseError,
	} {
		ph, known := classify(state)
		require.True(t, known, state)
		require.Equal(t, want, ph, state)
	}
	ph, known := classify("Xq")
	require.False(t, known)
	require.Equal(t, phaseWaiting, ph, "an unknown state keeps the job issued")
	_, known = classify("")
	require.False(t, known)
}

func TestParseStatus(t *testing.T) {
	exit, wall, ok := parseStatus([]byte("exit 3 start 1796032711 end 1796032713\n"))
	require.True(t, ok)
	require.Equal(t, 3, exit)
	require.Equal(t, 2*time.Second, wall)
	for _, bad := range []string{
		"", "exit 3 start 1796032711 end", "exit 3 start 1796032711 end 1796032713", // being written
		"exit 256 start 1 end 2\n", "exit -1 start 1 end 2\n", "exit 3 start 5 end 2\n",
		"exit x start 1 end 2\n", "exit 3 start 1 end 2 extra\n", "status 3 start 1 end 2\n",
	} {
		_, _, ok := parseStatus([]byte(bad))
		require.False(t, ok, "%q", bad)
	}
}
