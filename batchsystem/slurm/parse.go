package slurm

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Parsers for the text Slurm's commands print. Every parser here must cope
// with any input without panicking: scheduler output is not ours, and a
// broken line must cost one job's status, never the leader. Fuzz targets in
// parse_fuzz_test.go hold them to that.

// fieldSep separates fields in the squeue and sacct formats we ask for. The
// ASCII unit separator cannot appear in a job name typed on a command line,
// unlike "|" or a space, so a job name or a pending reason can hold anything
// else without shifting the fields.
const fieldSep = "\x1f"

// ErrParse is matched by every error a parser returns.
var ErrParse = errors.New("slurm: cannot parse scheduler output")

func parseErr(what, input string) error {
	if len(input) > 80 {
		input = input[:80] + "..."
	}
	return fmt.Errorf("%w: %s %q", ErrParse, what, input)
}

// jobStatus is what one query says about one Slurm job.
type jobStatus struct {
	SlurmID  string
	State    string        // first word of the Slurm state, e.g. "CANCELLED"
	Exit     int           // exit status of the batch script; -1 when unknown
	Signal   int           // signal that ended it; 0 when none or unknown
	Elapsed  time.Duration // run time so far, or in total once finished
	Name     string        // Slurm job name
	Reason   string        // why it is pending or how it ended (squeue only)
	HasTimes bool          // Elapsed was given and parsed
}

// parseSbatch reads the output of `sbatch --parsable`: "<jobid>" or
// "<jobid>;<cluster>" on the last line. Anything else is an error.
func parseSbatch(out string) (string, error) {
	var last string
	for _, line := range strings.Split(out, "\n") {
		if s := strings.TrimSpace(line); s != "" {
			last = s
		}
	}
	id, _, _ := strings.Cut(last, ";")
	if !validSlurmID(id) {
		return "", parseErr("sbatch --parsable output", out)
	}
	return id, nil
}

// validSlurmID accepts plain numeric job IDs, the only kind this adapter
// submits or adopts. Array and heterogeneous job IDs ("12_3", "12+0") are
// refused: their tasks are reported under other IDs.
func validSlurmID(id string) bool {
	if id == "" || len(id) > 20 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < '0' || id[i] > '9' {
			return false
		}
	}
	return true
}

// squeueFormat is the -O (--Format) argument that parseSqueue reads. Name
// and Reason come last since they are free text.
var squeueFormat = strings.Join([]string{
	"JobID:" + fieldSep,
	"State:" + fieldSep,
	"exit_code:" + fieldSep,
	"TimeUsed:" + fieldSep,
	"Name:" + fieldSep,
	"Reason:" + fieldSep,
}, ",")

// parseSqueue reads `squeue --noheader -O <squeueFormat>`. Its exit_code is
// the raw wait status (768 is exit 3; 9 is SIGKILL). Lines it cannot read are
// returned as errors next to the statuses it could read, so one odd line
// does not hide the others.
func parseSqueue(out string) ([]jobStatus, []error) {
	var res []jobStatus
	var errs []error
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Split(strings.TrimSuffix(line, fieldSep), fieldSep)
		if len(f) < 4 {
			errs = append(errs, parseErr("squeue line", line))
			continue
		}
		id := strings.TrimSpace(f[0])
		state := firstWord(f[1])
		if !validSlurmID(id) || state == "" {
			errs = append(errs, parseErr("squeue line", line))
			continue
		}
		st := jobStatus{SlurmID: id, State: state, Exit: -1}
		if raw, err := strconv.ParseUint(strings.TrimSpace(f[2]), 10, 32); err == nil {
			st.Exit, st.Signal = splitWaitStatus(uint32(raw))
		}
		if d, ok := parseDuration(f[3]); ok {
			st.Elapsed, st.HasTimes = d, true
		}
		if len(f) > 4 {
			st.Name = f[4]
		}
		if len(f) > 5 {
			st.Reason = strings.TrimSpace(strings.Join(f[5:], " "))
		}
		res = append(res, st)
	}
	return res, errs
}

// splitWaitStatus splits a Unix wait status into exit code and signal.
func splitWaitStatus(raw uint32) (exit, signal int) {
	if sig := int(raw & 0x7f); sig != 0 {
		return 0, sig
	}
	return int(raw>>8) & 0xff, 0
}

// sacctFormat is the --format argument that parseSacct reads.
const sacctFormat = "JobIDRaw,State,ExitCode,Elapsed,JobName"

// parseSacct reads `sacct --noheader --parsable2 --delimiter=<fieldSep>
// --format=<sacctFormat>`. Job steps ("12.batch", "12.0") are skipped: the
// allocation line carries the job's state. When a job appears twice (sacct
// lists each requeue), the last line wins.
func parseSacct(out string) ([]jobStatus, []error) {
	var res []jobStatus
	var errs []error
	index := map[string]int{}
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Split(line, fieldSep)
		if len(f) < 3 {
			errs = append(errs, parseErr("sacct line", line))
			continue
		}
		id := strings.TrimSpace(f[0])
		if strings.ContainsAny(id, ".+_") {
			continue // a step, a heterogeneous component or an array task
		}
		state := firstWord(f[1])
		if !validSlurmID(id) || state == "" {
			errs = append(errs, parseErr("sacct line", line))
			continue
		}
		st := jobStatus{SlurmID: id, State: state, Exit: -1}
		st.Exit, st.Signal = parseExitPair(f[2])
		if len(f) > 3 {
			if d, ok := parseDuration(f[3]); ok {
				st.Elapsed, st.HasTimes = d, true
			}
		}
		if len(f) > 4 {
			st.Name = strings.Join(f[4:], fieldSep)
		}
		if i, ok := index[id]; ok {
			res[i] = st
			continue
		}
		index[id] = len(res)
		res = append(res, st)
	}
	return res, errs
}

// parseExitPair reads Slurm's "exit:signal" (sacct ExitCode, scontrol
// ExitCode). It returns exit -1 when the text is not such a pair.
func parseExitPair(s string) (exit, signal int) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return -1, 0
	}
	e, err1 := strconv.Atoi(a)
	g, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || e < 0 || e > 255 || g < 0 || g > 255 {
		return -1, 0
	}
	return e, g
}

// parseScontrol reads `scontrol show job [-o] [id]`: records of key=value
// tokens, one line each with -o, or blank-line separated without it. A value
// may contain spaces (Reason=..., Command=...): a token without "=" belongs
// to the value before it. "No jobs in the system" yields no records.
func parseScontrol(out string) []map[string]string {
	var recs []map[string]string
	var cur map[string]string
	var lastKey string
	flush := func() {
		if len(cur) > 0 {
			recs = append(recs, cur)
		}
		cur, lastKey = nil, ""
	}
	for _, line := range strings.Split(out, "\n") {
		tokens := strings.Fields(line)
		if len(tokens) == 0 {
			flush()
			continue
		}
		// With -o every record starts with JobId= on a line of its own.
		if strings.HasPrefix(tokens[0], "JobId=") {
			flush()
		}
		for _, tok := range tokens {
			k, v, ok := strings.Cut(tok, "=")
			if !ok || k == "" {
				if cur != nil && lastKey != "" {
					cur[lastKey] += " " + tok
				}
				continue
			}
			if cur == nil {
				cur = map[string]string{}
			}
			cur[k] = v
			lastKey = k
		}
	}
	flush()
	return recs
}

// scontrolStatus turns one scontrol record into a jobStatus.
func scontrolStatus(rec map[string]string) (jobStatus, error) {
	id := rec["JobId"]
	state := firstWord(rec["JobState"])
	if !validSlurmID(id) || state == "" {
		return jobStatus{}, parseErr("scontrol record", fmt.Sprint(rec["JobId"], " ", rec["JobState"]))
	}
	st := jobStatus{SlurmID: id, State: state, Name: rec["JobName"], Reason: rec["Reason"]}
	st.Exit, st.Signal = parseExitPair(rec["ExitCode"])
	if d, ok := parseDuration(rec["RunTime"]); ok {
		st.Elapsed, st.HasTimes = d, true
	}
	return st, nil
}

func firstWord(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// maxDurationDays bounds parsed durations so arithmetic cannot overflow:
// no real job runs for 100 years.
const maxDurationDays = 36500

// parseDuration reads Slurm's time formats: "MM", "MM:SS", "HH:MM:SS",
// "D-HH", "D-HH:MM", "D-HH:MM:SS", with optional fractional seconds
// ("00:00:01.234" in some sacct fields). Without days, one field is minutes
// and two are minutes:seconds (as sbatch --time reads them); with days, the
// fields are hours, minutes, seconds. Words such as "UNLIMITED", "INVALID",
// "N/A" and "NOT_SET" are not durations and return ok false.
func parseDuration(s string) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	days := 0
	rest := s
	if d, r, ok := strings.Cut(s, "-"); ok {
		n, ok := smallUint(d, maxDurationDays)
		if !ok {
			return 0, false
		}
		days, rest = n, r
	}
	parts := strings.Split(rest, ":")
	if len(parts) > 3 {
		return 0, false
	}
	withDays := strings.Contains(s, "-")
	lastIsSeconds := (!withDays && len(parts) >= 2) || (withDays && len(parts) == 3)
	var frac time.Duration
	if last := parts[len(parts)-1]; strings.Contains(last, ".") {
		if !lastIsSeconds {
			return 0, false
		}
		whole, f, _ := strings.Cut(last, ".")
		if f == "" || len(f) > 9 {
			return 0, false
		}
		n, ok := smallUint(f, 999999999)
		if !ok {
			return 0, false
		}
		for i := len(f); i < 9; i++ {
			n *= 10
		}
		frac = time.Duration(n)
		parts[len(parts)-1] = whole
	}
	nums := make([]int, len(parts))
	for i, p := range parts {
		n, ok := smallUint(p, 1_000_000)
		if !ok {
			return 0, false
		}
		nums[i] = n
	}
	var h, m, sec int
	if withDays {
		// D-H, D-H:M, D-H:M:S
		h = nums[0]
		if len(nums) > 1 {
			m = nums[1]
		}
		if len(nums) > 2 {
			sec = nums[2]
		}
	} else {
		switch len(nums) {
		case 1:
			m = nums[0]
		case 2:
			m, sec = nums[0], nums[1]
		case 3:
			h, m, sec = nums[0], nums[1], nums[2]
		}
	}
	total := time.Duration(days)*24*time.Hour + time.Duration(h)*time.Hour +
		time.Duration(m)*time.Minute + time.Duration(sec)*time.Second + frac
	return total, true
}

// smallUint parses a decimal number of at most max, digits only.
func smallUint(s string, max int) (int, bool) {
	if s == "" || len(s) > 10 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if n > max {
		return 0, false
	}
	return n, true
}

// formatDuration writes d for sbatch --time as D-HH:MM:SS, rounded up to
// the second. Slurm rounds it up again to whole minutes.
func formatDuration(d time.Duration) string {
	secs := int64((d + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	days := secs / 86400
	secs %= 86400
	return fmt.Sprintf("%d-%02d:%02d:%02d", days, secs/3600, secs%3600/60, secs%60)
}
