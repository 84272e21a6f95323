package gridengine

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeGE is a Runner that plays a Grid Engine cell in memory, so the
// adapter's submission, polling, accounting and deletion logic run without
// a cluster. Tests move jobs between states by hand.
type fakeGE struct {
	mu       sync.Mutex
	next     int
	jobs     map[string]*fakeJob
	calls    map[string]int
	argv     map[string][][]string // every invocation's arguments, per command
	stdin    map[string][]byte     // the last standard input, per command
	maxSlots int
	memoryMB int64
	fail     map[string]error // command name -> error to return
	// failTimes makes the next N runs of a command fail as if the qmaster
	// were unreachable.
	failTimes map[string]int
	// qstatOut, if set, replaces qstat -xml's output.
	qstatOut []byte
	// beforeQstat, if set, runs (without the lock) before qstat -xml answers.
	beforeQstat func()
	// consumable is qconf -sc's consumable column for mem_free.
	consumable string
	// linger keeps deleted running jobs in qstat as "dr" until a test
	// ends them; otherwise qdel ends them at once.
	linger bool
}

type fakeJob struct {
	name    string
	state   string    // qstat's letters; "" once the job left qstat
	start   time.Time // shown while running
	submit  time.Time
	errText string // error reason, for jobs in error state
	sched   string // scheduling info
	acct    *acctRecord
}

func newFake() *fakeGE {
	return &fakeGE{next: 100, jobs: map[string]*fakeJob{}, calls: map[string]int{}, argv: map[string][][]string{},
		stdin: map[string][]byte{}, maxSlots: 8, memoryMB: 4096, fail: map[string]error{}, failTimes: map[string]int{},
		consumable: "YES"}
}

func (f *fakeGE) count(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[name]
}

func (f *fakeGE) lastArgs(name string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.argv[name]
	if len(a) == 0 {
		return nil
	}
	return a[len(a)-1]
}

func (f *fakeGE) setState(id, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j := f.jobs[id]
	j.state = state
	if strings.ContainsAny(state, "rt") && j.start.IsZero() {
		j.start = time.Now().Truncate(time.Second)
	}
}

// end takes a job out of qstat; with a record, qacct knows how it ended.
func (f *fakeGE) end(id string, failed, exit int, failedText string, wall time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j := f.jobs[id]
	j.state = ""
	j.acct = &acctRecord{Number: id, Name: j.name, Failed: failed, FailedText: failedText, Exit: exit,
		Wall: wall, HasWall: true, Started: true}
}

// vanish takes a job out of qstat with no accounting record.
func (f *fakeGE) vanish(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jobs[id].state = ""
}

func (f *fakeGE) add(id, name, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jobs[id] = &fakeJob{name: name, state: state, submit: time.Now()}
}

func (f *fakeGE) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	if name == "qstat" && slices.Contains(args, "-xml") {
		f.mu.Lock()
		hook := f.beforeQstat
		f.mu.Unlock()
		if hook != nil {
			hook()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, key := range callKeys(name, args) {
		f.calls[key]++
	}
	f.argv[name] = append(f.argv[name], args)
	f.stdin[name] = stdin
	if err := f.fail[name]; err != nil {
		return nil, err
	}
	if f.failTimes[name] > 0 {
		f.failTimes[name]--
		return nil, &CommandError{Name: name, Args: args, ExitCode: 1,
			Stderr: "error: commlib error: got select error (Connection refused)\nerror: unable to send message to qmaster using port 6444 on host \"vm\": got send error"}
	}
	bad := func(stdout, stderr string) error {
		return &CommandError{Name: name, Args: args, ExitCode: 1, Stdout: stdout, Stderr: stderr}
	}
	flag := func(f string) string {
		for i, a := range args {
			if a == f && i+1 < len(args) {
				return args[i+1]
			}
		}
		return ""
	}
	switch name {
	case "qsub":
		return f.qsub(args, flag, bad)
	case "qstat":
		if list := flag("-j"); list != "" {
			return f.qstatJ(list, bad)
		}
		if f.qstatOut != nil {
			return f.qstatOut, nil
		}
		return f.qstatXML(), nil
	case "qacct":
		return f.qacct(flag("-j"), bad)
	case "qdel":
		return f.qdel(args[len(args)-1], bad)
	case "qconf":
		return []byte("#name shortcut type relop requestable consumable default urgency\n" +
			"#--------\n" +
			"mem_free mf MEMORY <= YES " + f.consumable + " 0 0\n" +
			"gpu gpu INT <= YES YES 0 0\n" +
			"h_vmem h_vmem MEMORY <= YES NO 0 0\n"), nil
	}
	return nil, bad("", "fake: unknown command "+name)
}

func (f *fakeGE) qsub(args []string, flag func(string) string, bad func(string, string) error) ([]byte, error) {
	slots := 1
	if v := flag("-pe"); v != "" {
		n, _ := strconv.Atoi(args[slices.Index(args, "-pe")+2])
		slots = n
	}
	var memMB int64
	for i, a := range args {
		if a == "-l" {
			if v, ok := strings.CutPrefix(args[i+1], "mem_free="); ok {
				memMB, _ = strconv.ParseInt(strings.TrimSuffix(v, "M"), 10, 64)
			}
		}
	}
	perJob := memMB
	if f.consumable == "YES" {
		perJob *= int64(slots)
	}
	tooBig := slots > f.maxSlots || perJob > f.memoryMB
	switch flag("-w") {
	case "e":
		if tooBig {
			return nil, bad("", "Unable to run job: error: no suitable queues.\nExiting.")
		}
	case "v":
		if tooBig {
			return nil, bad("", "Unable to run job: Job 1 cannot run in PE \"smp\" because it only offers 0 slots\nverification: no suitable queues\nExiting.")
		}
		return []byte("verification: found suitable queue(s)\n"), nil
	}
	id := strconv.Itoa(f.next)
	f.next++
	f.jobs[id] = &fakeJob{name: flag("-N"), state: "qw", submit: time.Now().Truncate(time.Second)}
	return []byte(id + "\n"), nil
}

func (f *fakeGE) qstatXML() []byte {
	var sb strings.Builder
	sb.WriteString("<?xml version='1.0'?>\n<job_info>\n  <queue_info>\n")
	ids := make([]string, 0, len(f.jobs))
	for id := range f.jobs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		j := f.jobs[id]
		if j.state == "" {
			continue
		}
		fmt.Fprintf(&sb, "<job_list><JB_job_number>%s</JB_job_number><JB_name>%s</JB_name><JB_owner>root</JB_owner><state>%s</state>", id, j.name, j.state)
		if !j.start.IsZero() {
			fmt.Fprintf(&sb, "<JAT_start_time>%s</JAT_start_time>", j.start.Format(qstatTime))
		} else {
			fmt.Fprintf(&sb, "<JB_submission_time>%s</JB_submission_time>", j.submit.Format(qstatTime))
		}
		sb.WriteString("<slots>1</slots></job_list>\n")
	}
	sb.WriteString("  </queue_info>\n  <job_info>\n  </job_info>\n</job_info>\n")
	return []byte(sb.String())
}

func (f *fakeGE) qstatJ(list string, bad func(string, string) error) ([]byte, error) {
	var sb strings.Builder
	for _, id := range strings.Split(list, ",") {
		j, ok := f.jobs[id]
		if !ok || j.state == "" {
			continue
		}
		fmt.Fprintf(&sb, "==============================================================\njob_number:                 %s\njob_name:                   %s\n", id, j.name)
		if j.errText != "" {
			fmt.Fprintf(&sb, "error reason          1:      %s\n", j.errText)
		}
		if j.sched != "" {
			fmt.Fprintf(&sb, "scheduling info:            %s\n", j.sched)
		}
	}
	if sb.Len() == 0 {
		return nil, bad("", "Following jobs do not exist: \n"+list)
	}
	return []byte(sb.String()), nil
}

func (f *fakeGE) qacct(pattern string, bad func(string, string) error) ([]byte, error) {
	prefix := strings.TrimSuffix(pattern, "*")
	var sb strings.Builder
	ids := make([]string, 0, len(f.jobs))
	for id := range f.jobs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		j := f.jobs[id]
		if j.acct == nil || !strings.HasPrefix(j.name, prefix) {
			continue
		}
		r := j.acct
		fmt.Fprintf(&sb, "==============================================================\nqname        all.q\njobname      %s\njobnumber    %s\ntaskid       undefined\n", r.Name, r.Number)
		fmt.Fprintf(&sb, "start_time   Fri Dec  4 19:02:39 2026\nfailed       %d", r.Failed)
		if r.FailedText != "" {
			fmt.Fprintf(&sb, "  : %s", r.FailedText)
		}
		fmt.Fprintf(&sb, "\nexit_status  %d\nru_wallclock %ds\n", r.Exit, int(r.Wall/time.Second))
	}
	if sb.Len() == 0 {
		return nil, bad("", "error: job name "+pattern+" not found")
	}
	return []byte(sb.String()), nil
}

func (f *fakeGE) qdel(list string, bad func(string, string) error) ([]byte, error) {
	var out strings.Builder
	missing := false
	for _, id := range strings.Split(list, ",") {
		j, ok := f.jobs[id]
		if !ok || j.state == "" {
			fmt.Fprintf(&out, "denied: job \"%s\" does not exist\n", id)
			missing = true
			continue
		}
		switch {
		case strings.Contains(j.state, "d"):
			fmt.Fprintf(&out, "job %s is already in deletion\n", id)
		case strings.Contains(j.state, "r"):
			if f.linger {
				j.state = "dr"
			} else {
				j.state = ""
				j.acct = &acctRecord{Number: id, Name: j.name, Failed: failedGeneral, FailedText: "assumedly after job", Exit: 137, HasWall: true, Started: true}
			}
			fmt.Fprintf(&out, "root has registered the job %s for deletion\n", id)
		default:
			j.state = ""
			fmt.Fprintf(&out, "root has deleted job %s\n", id)
		}
	}
	if missing {
		return []byte(out.String()), bad(out.String(), "")
	}
	return []byte(out.String()), nil
}

// newTestSystem returns a BatchSystem on a fake Grid Engine that polls
// fast.
func newTestSystem(t *testing.T, mod func(*Options)) (*BatchSystem, *fakeGE) {
	t.Helper()
	f := newFake()
	o := Options{Runner: f, PollInterval: 5 * time.Millisecond, KillTimeout: 30 * time.Second}
	if mod != nil {
		mod(&o)
	}
	b, err := New(o)
	require.NoError(t, err)
	b.retryDelay = time.Millisecond
	t.Cleanup(func() {
		f.mu.Lock()
		f.fail, f.linger = map[string]error{}, false
		for _, j := range f.jobs {
			if j.state == "dr" {
				j.state = ""
			}
		}
		f.mu.Unlock()
		_ = b.Shutdown(context.Background())
	})
	return b, f
}
