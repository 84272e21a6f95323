package slurm

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
)

const mib = 1 << 20

// sbatchArgs builds the sbatch command line for spec. It fails for specs
// no Slurm job can represent (an empty command, NUL bytes, accelerators
// that are not GPUs).
func (b *BatchSystem) sbatchArgs(spec batchsystem.JobSpec) ([]string, error) {
	if len(spec.Command) == 0 {
		return nil, fmt.Errorf("%w: job %s (%s) has no Command; the Slurm batch system starts worker processes", ErrBadSpec, spec.JobID, spec.Name)
	}
	if err := checkEnv(spec.Env); err != nil {
		return nil, fmt.Errorf("%w: job %s: %w", ErrBadSpec, spec.JobID, err)
	}
	for _, a := range spec.Command {
		if strings.ContainsRune(a, 0) {
			return nil, fmt.Errorf("%w: job %s: command argument holds a NUL byte", ErrBadSpec, spec.JobID)
		}
	}
	for _, s := range []string{spec.Dir, spec.LogPath} {
		if strings.ContainsAny(s, "\x00\n") {
			return nil, fmt.Errorf("%w: job %s: path %q holds a NUL or newline", ErrBadSpec, spec.JobID, s)
		}
	}
	r := spec.Requirements
	gpus := 0
	for _, a := range r.Accelerators {
		if a.Kind != "gpu" {
			return nil, &batchsystem.InsufficientResourcesError{
				JobID: spec.JobID, Name: spec.Name, Resource: "accelerators",
				Requested: fmt.Sprintf("%q", a.Kind), Available: `only "gpu"`, System: "slurm",
			}
		}
	}
	gpus = r.AcceleratorCount("gpu")

	args := []string{
		"--parsable",
		"--job-name=" + jobName(b.opts.NamePrefix, spec),
		"--ntasks=1",
		"--cpus-per-task=" + strconv.Itoa(cpus(r.Cores)),
	}
	if r.Memory > 0 {
		args = append(args, fmt.Sprintf("--mem=%dM", ceilDiv(r.Memory, mib)))
	}
	if r.Disk > 0 && !b.opts.IgnoreDisk {
		args = append(args, fmt.Sprintf("--tmp=%dM", ceilDiv(r.Disk, mib)))
	}
	if r.Walltime > 0 {
		args = append(args, "--time="+formatDuration(r.Walltime))
	}
	part := b.opts.Partition
	if gpus > 0 {
		args = append(args, "--gres=gpu:"+strconv.Itoa(gpus))
		if b.opts.GPUPartition != "" {
			part = b.opts.GPUPartition
		}
	}
	if part != "" {
		args = append(args, "--partition="+part)
	}
	if dir := cmp(spec.Dir, b.opts.WorkDir); dir != "" {
		args = append(args, "--chdir="+dir)
	}
	if spec.LogPath != "" {
		// One file for both streams: without --error, sbatch sends stderr
		// to the --output file.
		args = append(args, "--output="+escapePattern(spec.LogPath))
	}
	args = append(args, b.opts.ExtraArgs...)
	args = append(args, "--wrap="+wrapScript(spec.Command, b.opts.Env, spec.Env))
	return args, nil
}

// wrapScript is the body of the batch script: exports, then exec of the
// command. Every word is single-quoted, so no argument is ever expanded by
// the shell, and exec makes the worker the script's process: Slurm's
// signals (scancel, time limit) reach it directly.
func wrapScript(argv []string, base, env map[string]string) string {
	merged := map[string]string{}
	for k, v := range base {
		merged[k] = v
	}
	for k, v := range env {
		merged[k] = v
	}
	keys := make([]string, 0, len(merged))
	for k := range merged {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	for _, k := range keys {
		sb.WriteString("export " + k + "=" + shellQuote(merged[k]) + "\n")
	}
	sb.WriteString("exec")
	for _, a := range argv {
		sb.WriteString(" " + shellQuote(a))
	}
	return sb.String()
}

// shellQuote quotes s for a POSIX shell: inside single quotes nothing is
// special except the single quote itself, written '\”.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// escapePattern protects a path from sbatch's filename patterns (%j, %x...):
// "%%" is a literal "%". A path holding a backslash needs nothing, because
// sbatch then ignores every pattern.
func escapePattern(p string) string {
	if strings.Contains(p, `\`) {
		return p
	}
	return strings.ReplaceAll(p, "%", "%%")
}

// jobName is "<prefix>_<kind>_<jobID>", reduced to characters that are safe
// in every Slurm tool's output and cut to a length squeue shows whole.
func jobName(prefix string, spec batchsystem.JobSpec) string {
	parts := []string{prefix}
	if spec.Kind != "" {
		parts = append(parts, spec.Kind)
	}
	if spec.JobID != "" {
		parts = append(parts, spec.JobID)
	}
	name := []byte(strings.Join(parts, "_"))
	for i, c := range name {
		ok := c == '_' || c == '-' || c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !ok {
			name[i] = '_'
		}
	}
	if len(name) > 120 {
		name = name[len(name)-120:] // the job ID, at the end, tells jobs apart
	}
	return string(name)
}

func cpus(cores float64) int {
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

// ErrBadSpec is matched by errors from Issue for a JobSpec this adapter
// cannot submit, whatever the cluster.
var ErrBadSpec = errors.New("slurm: job cannot be submitted")

// insufficientMessages are sbatch's refusals of requests the cluster can
// never satisfy (with EnforcePartLimits, Slurm refuses these at submission
// instead of leaving the job pending forever), with the resource each names.
var insufficientMessages = []struct{ text, resource string }{
	{"More processors requested than permitted", "cores"},
	{"Memory specification can not be satisfied", "memory"},
	{"Requested node configuration is not available", "cores, memory, disk or accelerators"},
	{"Invalid generic resource (gres) specification", "accelerators"},
	{"Requested time limit is invalid", "walltime"},
}

// transientMessages are failures of sbatch or scancel worth retrying.
var transientMessages = []string{
	"Socket timed out",
	"Unable to contact slurm controller",
	"temporarily unable to accept job",
	"Resource temporarily unavailable",
	"Slurm backup controller in standby mode",
	"Zero Bytes were transmitted or received",
}

// isTransient tells failures that mean "the controller is busy or
// unreachable right now".
func isTransient(err error) bool {
	msg := stderrOf(err)
	return slices.ContainsFunc(transientMessages, func(t string) bool { return strings.Contains(msg, t) })
}

// submit runs sbatch for spec and returns the Slurm job ID.
func (b *BatchSystem) submit(ctx context.Context, spec batchsystem.JobSpec) (string, error) {
	args, err := b.sbatchArgs(spec)
	if err != nil {
		return "", err
	}
	delay := b.retryDelay
	for attempt := 0; ; attempt++ {
		out, err := b.run(ctx, "sbatch", args...)
		if err == nil {
			id, perr := parseSbatch(string(out))
			if perr != nil {
				// sbatch succeeded, so a job may exist that we cannot name;
				// retrying could run it twice. Report instead.
				return "", fmt.Errorf("slurm: job %s submitted, but: %w", spec.JobID, perr)
			}
			return id, nil
		}
		msg := stderrOf(err)
		for _, m := range insufficientMessages {
			if strings.Contains(msg, m.text) {
				return "", fmt.Errorf("%w (sbatch: %s)", &batchsystem.InsufficientResourcesError{
					JobID: spec.JobID, Name: spec.Name, Resource: m.resource,
					Requested: requested(m.resource, spec.Requirements), Available: "what the partition allows",
					System: "slurm",
				}, msg)
			}
		}
		if !isTransient(err) || attempt >= b.opts.SubmitRetries {
			return "", fmt.Errorf("slurm: submitting job %s (%s): %w", spec.JobID, spec.Name, err)
		}
		b.log.Warn("slurm: sbatch failed, retrying", "job", spec.JobID, "attempt", attempt+1, "err", err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", fmt.Errorf("slurm: submitting job %s: %w", spec.JobID, ctx.Err())
		case <-t.C:
		}
		delay *= 2
	}
}

// requested describes what the job asked of resource, for error messages.
func requested(resource string, r batchsystem.Requirements) string {
	switch resource {
	case "cores":
		return strconv.Itoa(cpus(r.Cores))
	case "memory":
		return fmt.Sprintf("%d MiB of", ceilDiv(r.Memory, mib))
	case "accelerators":
		return fmt.Sprintf("%d GPU", r.AcceleratorCount("gpu"))
	}
	return "(" + describeRequest(r) + ")"
}

func describeRequest(r batchsystem.Requirements) string {
	s := fmt.Sprintf("cores=%g memory=%dMiB disk=%dMiB", r.Cores, ceilDiv(r.Memory, mib), ceilDiv(r.Disk, mib))
	if n := r.AcceleratorCount("gpu"); n > 0 {
		s += fmt.Sprintf(" gpus=%d", n)
	}
	if r.Walltime > 0 {
		s += " time=" + formatDuration(r.Walltime)
	}
	return s
}
