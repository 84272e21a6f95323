package gridengine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
)

const mib = 1 << 20

// ErrBadSpec is matched by errors from Issue and Adopt for a JobSpec (or a
// job number) this adapter cannot use, whatever the cluster.
var ErrBadSpec = errors.New("gridengine: job cannot be submitted")

// request is what one job asks of Grid Engine, in its units.
type request struct {
	slots  int    // cores, rounded up; 1 means no parallel environment
	memory string // "-l" value for memory, e.g. "mem_free=64M"; "" for none
	hrt    time.Duration
	gpus   string // "-l" value for GPUs; "" for none
	disk   string // "-l" value for disk; "" for none
}

// requestFor maps a job's requirements to Grid Engine's: cores to slots of
// the parallel environment, memory to MemoryResource (divided by the
// slots when that resource is a per-slot consumable), walltime to h_rt.
func (b *BatchSystem) requestFor(ctx context.Context, spec batchsystem.JobSpec) (request, error) {
	r := spec.Requirements
	q := request{slots: slots(r.Cores), hrt: r.Walltime}
	for _, a := range r.Accelerators {
		if a.Kind != "gpu" || b.opts.GPUResource == "" {
			available := `only "gpu", through Options.GPUResource`
			if b.opts.GPUResource == "" {
				available = "none (Options.GPUResource is not set)"
			}
			return q, &batchsystem.InsufficientResourcesError{
				JobID: spec.JobID, Name: spec.Name, Resource: "accelerators",
				Requested: fmt.Sprintf("%d %q", max(a.Count, 1), a.Kind), Available: available, System: "gridengine",
			}
		}
	}
	perSlot := func(string) bool { return false }
	if q.slots > 1 {
		perSlot = b.perSlotConsumable(ctx)
	}
	if r.Memory > 0 && !b.opts.IgnoreMemory {
		n := ceilDiv(r.Memory, mib)
		if perSlot(b.opts.MemoryResource) {
			n = ceilDiv(n, int64(q.slots))
		}
		q.memory = fmt.Sprintf("%s=%dM", b.opts.MemoryResource, n)
	}
	if n := r.AcceleratorCount("gpu"); n > 0 {
		if perSlot(b.opts.GPUResource) {
			n = int(ceilDiv(int64(n), int64(q.slots)))
		}
		q.gpus = fmt.Sprintf("%s=%d", b.opts.GPUResource, n)
	}
	if r.Disk > 0 && b.opts.DiskResource != "" {
		n := ceilDiv(r.Disk, mib)
		if perSlot(b.opts.DiskResource) {
			n = ceilDiv(n, int64(q.slots))
		}
		q.disk = fmt.Sprintf("%s=%dM", b.opts.DiskResource, n)
	}
	return q, nil
}

// perSlotConsumable returns whether a complex is consumed per slot, from
// `qconf -sc`, asked once per BatchSystem. If qconf fails, it says yes and
// asks again next time: dividing a per-job request by the slots asks for
// too little, which at worst places a job on a host with less memory than
// it wanted; multiplying a per-slot one asks for too much, which can keep
// it waiting forever.
func (b *BatchSystem) perSlotConsumable(ctx context.Context) func(string) bool {
	b.complexMu.Lock()
	defer b.complexMu.Unlock()
	if b.complexes == nil {
		out, err := b.run(ctx, nil, "qconf", "-sc")
		if err != nil {
			b.log.Warn("gridengine: qconf -sc failed; taking resources as per-slot consumables", "err", err)
			return func(string) bool { return true }
		}
		b.complexes = parseComplexes(string(out))
	}
	cx := b.complexes
	return func(name string) bool {
		c, ok := cx[name]
		return !ok || c.Consumable == "YES"
	}
}

// qsubArgs builds the qsub command line for spec and its request. The
// job's command comes on standard input, as a script (jobScript).
func (b *BatchSystem) qsubArgs(spec batchsystem.JobSpec, q request, verify string) []string {
	args := []string{"-terse", "-S", "/bin/sh", "-j", "y", "-N", jobName(b.opts.NamePrefix, spec)}
	if verify != "" {
		args = append(args, "-w", verify)
	}
	if !b.opts.NoInheritEnv {
		args = append(args, "-V")
	}
	if b.opts.Queue != "" {
		args = append(args, "-q", b.opts.Queue)
	}
	args = append(args, q.resourceArgs(b.opts.ParallelEnv)...)
	if dir := cmp(spec.Dir, b.opts.WorkDir); dir != "" {
		args = append(args, "-wd", dir)
	} else {
		args = append(args, "-cwd")
	}
	// The script sends its output to LogPath itself: qsub's -o would read
	// "host:" prefixes and "$VAR" in the path. Without a LogPath the
	// output is dropped rather than left as <name>.o<number> files in the
	// working directory, which may be the leader's.
	args = append(args, "-o", "/dev/null")
	return append(args, b.opts.ExtraArgs...)
}

// resourceArgs are the -pe and -l options of a request.
func (q request) resourceArgs(pe string) []string {
	var args []string
	if q.slots > 1 {
		args = append(args, "-pe", pe, strconv.Itoa(q.slots))
	}
	for _, l := range []string{q.memory, q.gpus, q.disk} {
		if l != "" {
			args = append(args, "-l", l)
		}
	}
	if q.hrt > 0 {
		args = append(args, "-l", "h_rt="+formatHRT(q.hrt))
	}
	return args
}

// jobScript is the script qsub reads: the log redirection, the exports,
// the command (every word single-quoted, so Grid Engine's joining of a
// command line with spaces never comes into it), the status file, and the
// exit status, with 99 and 100 turned into 1: Grid Engine gives those a
// meaning (99 reschedules a job, so it would run again forever; 100 puts
// it in error state, where it waits for an administrator).
//
// The command is not exec'd, so that the shell can look at its status;
// Grid Engine signals every process of the job, so this costs nothing
// when a job is deleted or hits its h_rt.
//
// With a job folder (JobSpec.Dir), the script writes the command's exit
// status and its start and end times there (statusFile), and the poller
// reads them when the job leaves qstat: a file read instead of a qacct,
// which would read the whole accounting file and waits for the qmaster's
// accounting flush. qacct remains for the jobs that never write the file:
// those killed by h_rt, qdel or a signal.
func jobScript(spec batchsystem.JobSpec, base map[string]string) string {
	var sb strings.Builder
	sb.WriteString("# gaffer job " + oneLine(spec.JobID) + ", attempt " + strconv.Itoa(spec.Attempt) + "\n")
	if spec.LogPath != "" {
		sb.WriteString("exec >>" + shellQuote(spec.LogPath) + " 2>&1\n")
	}
	if spec.Dir != "" {
		sb.WriteString("gaffer_start=$(date +%s)\n")
	}
	merged := map[string]string{}
	for k, v := range base {
		merged[k] = v
	}
	for k, v := range spec.Env {
		merged[k] = v
	}
	keys := make([]string, 0, len(merged))
	for k := range merged {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		sb.WriteString("export " + k + "=" + shellQuote(merged[k]) + "\n")
	}
	for i, a := range spec.Command {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(shellQuote(a))
	}
	sb.WriteString("\nrc=$?\n")
	if spec.Dir != "" {
		// Errors of this write go nowhere: without the file, the poller
		// asks qacct.
		sb.WriteString("printf 'exit %s start %s end %s\\n' \"$rc\" \"$gaffer_start\" \"$(date +%s)\" 2>/dev/null >" +
			shellQuote(filepath.Join(spec.Dir, statusPrefix)) + "\"$JOB_ID\"\n")
	}
	sb.WriteString("case $rc in 99|100)\n")
	sb.WriteString("\techo \"gaffer: the job exited $rc, which Grid Engine reserves (99 reschedules a job, 100 puts it in error state); it exits 1 instead\" >&2\n")
	sb.WriteString("\trc=1 ;;\nesac\nexit $rc\n")
	return sb.String()
}

// statusPrefix starts the name of the status file a job writes in its
// folder; the job number ends it.
const statusPrefix = ".gridengine-exit."

// statusFile is where the job with this number and folder writes its
// status; "" when it has no folder.
func statusFile(dir, number string) string {
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, statusPrefix+number)
}

// oneLine keeps a value on one line of a script comment.
func oneLine(s string) string { return strings.NewReplacer("\n", " ", "\r", " ").Replace(s) }

// shellQuote quotes s for a POSIX shell: inside single quotes nothing is
// special except the single quote itself, written '\”.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// jobName is "<prefix>_<kind>_<jobID>", reduced to characters every Grid
// Engine tool takes in a name (qsub refuses ':', '/', '@', '\', '*', '?'
// and blanks) and cut to 120 characters, keeping the job ID at the end.
// The prefix is kept whole when it can be: qacct finds the jobs of a
// BatchSystem by the pattern "<prefix>_*".
func jobName(prefix string, spec batchsystem.JobSpec) string {
	var parts []string
	if spec.Kind != "" {
		parts = append(parts, spec.Kind)
	}
	if spec.JobID != "" {
		parts = append(parts, spec.JobID)
	}
	rest := []byte(strings.Join(parts, "_"))
	for i, c := range rest {
		ok := c == '_' || c == '-' || c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !ok {
			rest[i] = '_'
		}
	}
	if room := maxNameLen - len(prefix) - 1; len(rest) > room {
		rest = rest[len(rest)-room:] // the job ID, at the end, tells jobs apart
	}
	return prefix + "_" + string(rest)
}

// maxNameLen bounds job names; NamePrefix may take up to maxPrefixLen.
const (
	maxNameLen   = 120
	maxPrefixLen = 40
)

func slots(cores float64) int {
	if math.IsNaN(cores) || cores <= 1 {
		return 1
	}
	if cores > 1<<20 {
		return 1 << 20
	}
	return int(math.Ceil(cores))
}

// ceilDiv divides rounding up, without overflowing for huge n.
func ceilDiv(n, d int64) int64 {
	q := n / d
	if n%d > 0 {
		q++
	}
	return q
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// checkSpec refuses specs no Grid Engine job can represent.
func checkSpec(spec batchsystem.JobSpec) error {
	if len(spec.Command) == 0 {
		return fmt.Errorf("%w: job %s (%s) has no Command; the Grid Engine batch system starts worker processes", ErrBadSpec, spec.JobID, spec.Name)
	}
	if err := checkEnv(spec.Env); err != nil {
		return fmt.Errorf("%w: job %s: %w", ErrBadSpec, spec.JobID, err)
	}
	for _, a := range spec.Command {
		if strings.ContainsRune(a, 0) {
			return fmt.Errorf("%w: job %s: command argument holds a NUL byte", ErrBadSpec, spec.JobID)
		}
	}
	for _, s := range []string{spec.Dir, spec.LogPath} {
		if strings.ContainsAny(s, "\x00\n") {
			return fmt.Errorf("%w: job %s: path %q holds a NUL or newline", ErrBadSpec, spec.JobID, s)
		}
	}
	return nil
}

// transientMessages are failures of qsub or qdel worth retrying: the
// qmaster is busy, restarting or briefly unreachable.
var transientMessages = []string{
	"unable to contact qmaster",
	"unable to send message to qmaster",
	"failed receiving gdi request",
	"can't connect to service",
	"commlib error",
	"got syncron message receive timeout error",
	"qmaster is overloaded",
}

func isTransient(err error) bool {
	msg := stderrOf(err)
	return slices.ContainsFunc(transientMessages, func(t string) bool { return strings.Contains(msg, t) })
}

// submit runs qsub for spec and returns the job number.
func (b *BatchSystem) submit(ctx context.Context, spec batchsystem.JobSpec) (string, request, error) {
	if err := checkSpec(spec); err != nil {
		return "", request{}, err
	}
	q, err := b.requestFor(ctx, spec)
	if err != nil {
		return "", q, err
	}
	verify := "e"
	if b.opts.NoVerify {
		verify = ""
	}
	args := b.qsubArgs(spec, q, verify)
	script := []byte(jobScript(spec, b.opts.Env))
	delay := b.retryDelay
	for attempt := 0; ; attempt++ {
		out, err := b.run(ctx, script, "qsub", args...)
		if err == nil {
			number, perr := parseQsub(string(out))
			if perr != nil {
				// qsub succeeded, so a job may exist that we cannot name;
				// submitting again could run it twice. Report instead.
				return "", q, fmt.Errorf("gridengine: job %s submitted, but: %w", spec.JobID, perr)
			}
			return number, q, nil
		}
		if ire := b.refusal(ctx, spec, q, err); ire != nil {
			return "", q, ire
		}
		if !isTransient(err) || attempt >= b.opts.SubmitRetries {
			return "", q, fmt.Errorf("gridengine: submitting job %s (%s): %w", spec.JobID, spec.Name, err)
		}
		b.log.Warn("gridengine: qsub failed, retrying", "job", spec.JobID, "attempt", attempt+1, "err", err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", q, fmt.Errorf("gridengine: submitting job %s: %w", spec.JobID, ctx.Err())
		case <-t.C:
		}
		delay *= 2
	}
}

// refusal turns qsub's refusal of a job no queue can ever run into an
// error matching batchsystem.ErrInsufficientResources, or returns nil for
// any other failure.
//
// `qsub -w e` says only "no suitable queues". To name the resource, as
// the leader's message should, refusal asks `qsub -w v` (which checks and
// submits nothing) about each requested resource alone. This costs a few
// commands, and only for jobs that are refused.
func (b *BatchSystem) refusal(ctx context.Context, spec batchsystem.JobSpec, q request, err error) error {
	msg := stderrOf(err)
	ire := &batchsystem.InsufficientResourcesError{JobID: spec.JobID, Name: spec.Name, System: "gridengine"}
	switch {
	case strings.Contains(msg, "no suitable queues"):
		ire.Resource, ire.Requested, ire.Available = "cores, memory, walltime or accelerators", "("+describe(q)+")", "what any queue offers"
		type probe struct {
			resource, requested string
			alone               request
		}
		var probes []probe
		if q.slots > 1 {
			probes = append(probes, probe{"cores", strconv.Itoa(q.slots), request{slots: q.slots}})
		}
		if q.memory != "" {
			// The whole job's memory, in one slot: q.memory may be per slot.
			total := fmt.Sprintf("%s=%dM", b.opts.MemoryResource, ceilDiv(spec.Requirements.Memory, mib))
			probes = append(probes, probe{"memory", total, request{slots: 1, memory: total}})
		}
		if q.hrt > 0 {
			probes = append(probes, probe{"walltime", "h_rt=" + formatHRT(q.hrt), request{slots: 1, hrt: q.hrt}})
		}
		if q.gpus != "" {
			probes = append(probes, probe{"accelerators", q.gpus, request{slots: 1, gpus: q.gpus}})
		}
		if q.disk != "" {
			probes = append(probes, probe{"disk", q.disk, request{slots: 1, disk: q.disk}})
		}
		for _, p := range probes {
			_, verr := b.run(ctx, []byte("true\n"), "qsub", b.qsubArgs(spec, p.alone, "v")...)
			if verr == nil || !strings.Contains(stderrOf(verr), "no suitable queues") {
				continue
			}
			ire.Resource, ire.Requested = p.resource, p.requested
			if detail := firstLine(stderrOf(verr)); detail != "" {
				ire.Available = "what any queue offers (" + detail + ")"
			}
			break
		}
	case strings.Contains(msg, "unknown resource"):
		ire.Resource, ire.Requested, ire.Available = "resources", "("+describe(q)+")", "none: "+firstLine(msg)
		for _, r := range []struct{ resource, name string }{
			{"memory", b.opts.MemoryResource}, {"accelerators", b.opts.GPUResource}, {"disk", b.opts.DiskResource},
		} {
			if r.name != "" && strings.Contains(msg, `"`+r.name+`"`) {
				ire.Resource = r.resource
			}
		}
	case strings.Contains(msg, "parallel environment") && strings.Contains(msg, "does not exist"):
		ire.Resource, ire.Requested, ire.Available = "cores", strconv.Itoa(q.slots), "one: parallel environment "+b.opts.ParallelEnv+" does not exist (Options.ParallelEnv)"
	default:
		return nil
	}
	return fmt.Errorf("%w (qsub: %s)", ire, firstLine(msg))
}

func firstLine(s string) string {
	for line := range strings.Lines(s) {
		if t := strings.TrimSpace(line); t != "" {
			return t
		}
	}
	return ""
}

// describe lists a request for messages.
func describe(q request) string {
	parts := []string{"slots=" + strconv.Itoa(q.slots)}
	for _, l := range []string{q.memory, q.gpus, q.disk} {
		if l != "" {
			parts = append(parts, l)
		}
	}
	if q.hrt > 0 {
		parts = append(parts, "h_rt="+formatHRT(q.hrt))
	}
	return strings.Join(parts, " ")
}
