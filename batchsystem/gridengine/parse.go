package gridengine

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Parsers for what Grid Engine's commands print. Every parser must cope
// with any input without panicking: scheduler output is not ours, and an
// odd line must cost at most one job's status, never the leader. The fuzz
// targets in parse_fuzz_test.go hold them to that.

// ErrParse is matched by every error a parser returns.
var ErrParse = errors.New("gridengine: cannot parse scheduler output")

func parseErr(what, input string) error {
	if len(input) > 80 {
		input = input[:80] + "..."
	}
	return fmt.Errorf("%w: %s %q", ErrParse, what, input)
}

// validJobNumber accepts plain job numbers, the only kind this adapter
// submits or adopts. Array tasks ("12.3") are refused.
func validJobNumber(id string) bool {
	if id == "" || len(id) > 18 || id[0] == '0' {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < '0' || id[i] > '9' {
			return false
		}
	}
	return true
}

// parseQsub reads `qsub -terse`: the job number on the last line. An
// array job's "12.1-10:1" is an error: this adapter submits none.
func parseQsub(out string) (string, error) {
	var last string
	for line := range strings.Lines(out) {
		if s := strings.TrimSpace(line); s != "" {
			last = s
		}
	}
	if !validJobNumber(last) {
		return "", parseErr("qsub -terse output", out)
	}
	return last, nil
}

// qstatJob is one <job_list> entry of `qstat -xml`.
type qstatJob struct {
	Number string
	Name   string
	Owner  string
	State  string    // the letters, e.g. "qw", "r", "Eqw", "dr"
	Start  time.Time // JAT_start_time: when it started (running jobs); zero if absent
	Submit time.Time // JB_submission_time (waiting jobs); zero if absent
	Slots  int
	Tasks  string // array task or range; "" for ordinary jobs
}

// xmlJob is the XML form of qstatJob.
type xmlJob struct {
	Number string `xml:"JB_job_number"`
	Name   string `xml:"JB_name"`
	Owner  string `xml:"JB_owner"`
	State  string `xml:"state"`
	Start  string `xml:"JAT_start_time"`
	Submit string `xml:"JB_submission_time"`
	Slots  string `xml:"slots"`
	Tasks  string `xml:"tasks"`
}

// qstatTime is how qstat -xml writes times: local time, no zone.
const qstatTime = "2006-01-02T15:04:05"

// parseQstatXML reads `qstat -xml`: running jobs under <queue_info>,
// waiting ones under <job_info>, each a <job_list>. A listing that cannot
// be read whole is an error, and no job of it is returned: the poller
// takes a job's absence from the listing as its end, so half a listing
// would end jobs that still run.
func parseQstatXML(out []byte, loc *time.Location) ([]qstatJob, error) {
	dec := xml.NewDecoder(bytes.NewReader(out))
	dec.Strict = true
	var res []qstatJob
	sawRoot := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: qstat -xml: %w", ErrParse, err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch se.Name.Local {
		case "job_info":
			sawRoot = true
		case "job_list":
			var x xmlJob
			if err := dec.DecodeElement(&x, &se); err != nil {
				return nil, fmt.Errorf("%w: qstat -xml: %w", ErrParse, err)
			}
			j := qstatJob{
				Number: strings.TrimSpace(x.Number), Name: strings.TrimSpace(x.Name),
				Owner: strings.TrimSpace(x.Owner), State: strings.TrimSpace(x.State),
				Tasks: strings.TrimSpace(x.Tasks),
			}
			if !validJobNumber(j.Number) {
				return nil, parseErr("qstat -xml job number", x.Number)
			}
			j.Slots, _ = strconv.Atoi(strings.TrimSpace(x.Slots))
			if t, err := time.ParseInLocation(qstatTime, strings.TrimSpace(x.Start), loc); err == nil {
				j.Start = t
			}
			if t, err := time.ParseInLocation(qstatTime, strings.TrimSpace(x.Submit), loc); err == nil {
				j.Submit = t
			}
			res = append(res, j)
		}
	}
	if !sawRoot {
		// An empty listing is still a <job_info> document; anything else
		// (an error page, nothing at all) is not an answer.
		return nil, parseErr("qstat -xml output without <job_info>", string(out))
	}
	return res, nil
}

// acctRecord is one record of `qacct -j`.
type acctRecord struct {
	Number     string
	Name       string
	TaskID     string
	Failed     int    // Grid Engine's failure code; 0 is none, -1 unreadable
	FailedText string // its explanation, e.g. "qmaster enforced h_rt, h_cpu, or h_vmem limit"
	Exit       int    // exit_status; -1 unreadable
	Wall       time.Duration
	HasWall    bool
	Started    bool // start_time is a time, not "-/-"
	Category   string
}

// parseQacct reads `qacct -j`: records of "key value" lines, each record
// after a line of '='. A record whose job number or failure code cannot
// be read is returned as an error, next to the records that could be.
func parseQacct(out string) ([]acctRecord, []error) {
	var res []acctRecord
	var errs []error
	var cur map[string]string
	flush := func() {
		if len(cur) == 0 {
			return
		}
		rec, err := acctFrom(cur)
		if err != nil {
			errs = append(errs, err)
		} else {
			res = append(res, rec)
		}
		cur = nil
	}
	for line := range strings.Lines(out) {
		line = strings.TrimRight(line, "\r\n")
		t := strings.TrimSpace(line)
		if t == "" {
			continue
		}
		if strings.Trim(t, "=") == "" {
			flush()
			cur = map[string]string{}
			continue
		}
		if cur == nil {
			continue // before the first record: qacct's error lines, if any
		}
		k, v, _ := strings.Cut(t, " ")
		cur[k] = strings.TrimSpace(v)
	}
	flush()
	return res, errs
}

func acctFrom(m map[string]string) (acctRecord, error) {
	rec := acctRecord{Number: m["jobnumber"], Name: m["jobname"], TaskID: m["taskid"], Category: m["category"]}
	if !validJobNumber(rec.Number) {
		return rec, parseErr("qacct jobnumber", m["jobnumber"])
	}
	rec.Failed, rec.FailedText = leadingInt(m["failed"])
	if rec.Failed < 0 {
		return rec, parseErr("qacct failed", m["failed"])
	}
	rec.FailedText = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rec.FailedText), ":"))
	rec.Exit, _ = leadingInt(m["exit_status"])
	rec.Wall, rec.HasWall = parseSeconds(m["ru_wallclock"])
	st := m["start_time"]
	rec.Started = st != "" && st != "-/-"
	return rec, nil
}

// leadingInt reads the number at the start of s ("137   (Killed)") and
// returns the rest; -1 if there is none or it is out of range.
func leadingInt(s string) (int, string) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || i > 9 {
		return -1, s
	}
	n, _ := strconv.Atoi(s[:i])
	return n, s[i:]
}

// maxSeconds bounds parsed durations so that arithmetic cannot overflow:
// no real job runs for 100 years.
const maxSeconds = 100 * 365 * 24 * 3600

// parseSeconds reads qacct's ru_wallclock: "3s", "0s", "2.5s", or a bare
// number of seconds (older releases).
func parseSeconds(s string) (time.Duration, bool) {
	s = strings.TrimSuffix(strings.TrimSpace(s), "s")
	if s == "" || strings.ContainsAny(s, "eExXpP+-_") { // no exponents, hex, signs
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > maxSeconds {
		return 0, false
	}
	return time.Duration(f * float64(time.Second)), true
}

// jobDetail is what `qstat -j` says about one job that matters here.
type jobDetail struct {
	Number string
	Name   string
	Errors []string // "error reason N:" lines: why a job is in error state
	Sched  []string // "scheduling info:" lines: why a job waits
}

// parseQstatJ reads `qstat -j <list>`: one block of "key: value" lines per
// job, after a line of '='. A value continues on lines that start with a
// blank.
func parseQstatJ(out string) map[string]jobDetail {
	res := map[string]jobDetail{}
	var cur *jobDetail
	var lastKey string
	flush := func() {
		if cur != nil && validJobNumber(cur.Number) {
			res[cur.Number] = *cur
		}
		cur, lastKey = nil, ""
	}
	for line := range strings.Lines(out) {
		line = strings.TrimRight(line, "\r\n")
		t := strings.TrimSpace(line)
		if t == "" {
			continue
		}
		if strings.Trim(t, "=") == "" {
			flush()
			cur = &jobDetail{}
			continue
		}
		if cur == nil {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			// a continuation of the value before
			switch lastKey {
			case "scheduling info":
				cur.Sched = append(cur.Sched, t)
			case "error reason":
				cur.Errors = append(cur.Errors, t)
			}
			continue
		}
		k, v, ok := strings.Cut(t, ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		lastKey = k
		switch {
		case k == "job_number":
			cur.Number = v
		case k == "job_name":
			cur.Name = v
		case k == "scheduling info":
			if v != "" {
				cur.Sched = append(cur.Sched, v)
			}
		case strings.HasPrefix(k, "error reason"):
			lastKey = "error reason"
			if v != "" {
				cur.Errors = append(cur.Errors, v)
			}
		}
	}
	flush()
	return res
}

// complexAttr is one line of `qconf -sc`.
type complexAttr struct {
	Shortcut   string
	Type       string
	Consumable string // "YES" (per slot), "JOB" (per job) or "NO"
}

// parseComplexes reads `qconf -sc`: name, shortcut, type, relop,
// requestable, consumable, default, urgency; '#' starts a comment.
func parseComplexes(out string) map[string]complexAttr {
	res := map[string]complexAttr{}
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) < 6 || strings.HasPrefix(f[0], "#") {
			continue
		}
		res[f[0]] = complexAttr{Shortcut: f[1], Type: f[2], Consumable: strings.ToUpper(f[5])}
	}
	return res
}

// qdelDone reads what a qdel that exited non-zero printed, and reports
// whether it still did all it had to: every line says a job was deleted
// ("root has deleted job 12", "root has registered the job 13 for
// deletion", "job 15 is already in deletion") or does not exist ("denied:
// job "14" does not exist"), which for a deletion is as good. Any other
// line is a real failure.
func qdelDone(out string) bool {
	any := false
	for line := range strings.Lines(out) {
		t := strings.TrimSpace(line)
		if t == "" {
			continue
		}
		any = true
		if rest, ok := strings.CutPrefix(t, `denied: job "`); ok {
			if id, tail, ok := strings.Cut(rest, `"`); ok && strings.TrimSpace(tail) == "does not exist" && validJobNumber(id) {
				continue
			}
			return false
		}
		if strings.Contains(t, " has deleted job ") || strings.HasSuffix(t, " is already in deletion") ||
			(strings.Contains(t, " has registered the job ") && strings.HasSuffix(t, " for deletion")) {
			continue
		}
		return false
	}
	return any
}

// formatHRT writes d as h_rt's hours:minutes:seconds, rounded up to the
// second and at least one second.
func formatHRT(d time.Duration) string {
	if d > time.Duration(maxSeconds)*time.Second {
		d = time.Duration(maxSeconds) * time.Second
	}
	secs := int64((d + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	return fmt.Sprintf("%d:%02d:%02d", secs/3600, secs%3600/60, secs%60)
}

// qacctTime formats t for qacct -b ([[CC]YY]MMDDhhmm[.SS]) in local time.
func qacctTime(t time.Time) string { return t.Format("200601021504.05") }

// parseStatus reads the status file a job script writes (jobScript):
// "exit <status> start <epoch seconds> end <epoch seconds>". It returns
// the status and the run time, or ok false for anything else, such as a
// file still being written.
func parseStatus(b []byte) (exit int, wall time.Duration, ok bool) {
	f := strings.Fields(string(b))
	if len(f) != 6 || f[0] != "exit" || f[2] != "start" || f[4] != "end" || !strings.HasSuffix(string(b), "\n") {
		return 0, 0, false
	}
	exit, err := strconv.Atoi(f[1])
	if err != nil || exit < 0 || exit > 255 {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(f[3], 10, 64)
	end, err2 := strconv.ParseInt(f[5], 10, 64)
	if err1 != nil || err2 != nil || end < start || end-start > maxSeconds {
		return 0, 0, false
	}
	return exit, time.Duration(end-start) * time.Second, true
}
