package slurm

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"
)

// Accounting says where the adapter looks for jobs that the controller has
// forgotten (finished more than MinJobAge ago, 300 s by default).
type Accounting string

const (
	// AccountingSacct runs plain sacct: a cluster with slurmdbd. The default.
	AccountingSacct Accounting = "sacct"
	// AccountingJobComp runs `sacct -c`, which reads the jobcomp/filetxt
	// log of a cluster without slurmdbd.
	AccountingJobComp Accounting = "jobcomp"
	// AccountingNone never runs sacct: a forgotten job stays unknown.
	AccountingNone Accounting = "none"
)

// Options configure a BatchSystem. The zero value works on a cluster with
// a default partition and slurmdbd.
type Options struct {
	// Runner runs the Slurm commands; nil means ExecRunner{} (PATH).
	Runner Runner
	// Logger receives debug and warning messages; nil discards them.
	Logger *slog.Logger

	// PollInterval is the least time between two status queries. One query
	// set (squeue, plus sacct for jobs squeue no longer lists) covers every
	// issued job, however many there are and however often the leader asks.
	// Default 5 s: Slurm admins complain about tight polling loops.
	PollInterval time.Duration
	// MaxIDsPerQuery bounds the job IDs named on one squeue, sacct or
	// scancel command line (default 1000). Linux limits one argument to
	// 128 KiB; 1000 IDs of 10 digits take 11 KiB.
	MaxIDsPerQuery int
	// CommandTimeout bounds each Slurm command (default 2 minutes).
	CommandTimeout time.Duration
	// KillTimeout bounds how long Kill and Shutdown wait for Slurm to
	// confirm that cancelled jobs stopped (default 5 minutes).
	KillTimeout time.Duration
	// SubmitRetries is how many times an sbatch or scancel that failed for
	// a transient reason (controller busy or unreachable) is retried
	// (default 3; -1 for none).
	SubmitRetries int

	// Accounting says how to find jobs the controller forgot.
	Accounting Accounting
	// SacctLookback is how far before its submission sacct searches for a
	// job; for adopted jobs, before the adoption (default 7 days). Bounding
	// the window matters: sacct -j without a start time made slurmdbd scan
	// its whole history (Toil issue #5381).
	SacctLookback time.Duration

	// Partition for every job; "" means the cluster's default.
	Partition string
	// GPUPartition, if set, replaces Partition for jobs that ask for GPUs.
	GPUPartition string
	// NamePrefix starts every Slurm job name (default "gaffer").
	NamePrefix string
	// WorkDir is the working directory for jobs whose JobSpec.Dir is empty.
	// It must be on a file system every node sees. "" leaves sbatch's
	// default (the leader's current directory).
	WorkDir string
	// IgnoreDisk leaves out --tmp. Many clusters do not configure TmpDisk
	// on their nodes; there, any --tmp request keeps a job pending forever.
	IgnoreDisk bool
	// ExtraArgs are added to every sbatch command line, e.g. "--qos=high",
	// "--account=lab". Arguments the adapter sets itself are refused by New.
	ExtraArgs []string
	// Env is exported to every job, under JobSpec.Env (which wins).
	Env map[string]string

	// Group configures grouping: small jobs run in pilots, a few Slurm
	// jobs that each run many gaffer jobs (group.go, docs/slurm.md).
	Group GroupOptions
}

const (
	defaultPollInterval   = 5 * time.Second
	defaultMaxIDs         = 1000
	defaultCommandTimeout = 2 * time.Minute
	defaultKillTimeout    = 5 * time.Minute
	defaultLookback       = 7 * 24 * time.Hour
)

// ErrBadOption is matched by errors from New for options that cannot work.
var ErrBadOption = errors.New("slurm: bad option")

// ConflictingArgError is an ExtraArgs entry that collides with an argument
// the adapter computes itself.
type ConflictingArgError struct {
	Arg string // as the user wrote it
	Use string // what to use instead
}

func (e *ConflictingArgError) Error() string {
	return fmt.Sprintf("slurm: sbatch argument %q conflicts with what gaffer sets itself; %s", e.Arg, e.Use)
}

// Is reports that e is an ErrBadOption.
func (e *ConflictingArgError) Is(target error) bool { return target == ErrBadOption }

// reservedLong maps long sbatch options the adapter sets (or that would
// break it) to advice.
var reservedLong = []struct{ name, use string }{
	{"--mem", "memory comes from the job's requirements"},
	{"--mem-per-cpu", "memory comes from the job's requirements"},
	{"--mem-per-gpu", "memory comes from the job's requirements"},
	{"--cpus-per-task", "cores come from the job's requirements"},
	{"--cpus-per-gpu", "cores come from the job's requirements"},
	{"--ntasks", "gaffer runs one task per job; cores come from the job's requirements"},
	{"--tmp", "disk comes from the job's requirements (set IgnoreDisk to leave it out)"},
	{"--time", "the time limit comes from the job's Walltime"},
	{"--partition", "set Options.Partition or Options.GPUPartition"},
	{"--gres", "accelerators come from the job's requirements"},
	{"--gpus", "accelerators come from the job's requirements"},
	{"--gpus-per-node", "accelerators come from the job's requirements"},
	{"--gpus-per-task", "accelerators come from the job's requirements"},
	{"--job-name", "names are derived from the job; set Options.NamePrefix"},
	{"--output", "output goes to JobSpec.LogPath"},
	{"--error", "output goes to JobSpec.LogPath"},
	{"--chdir", "the directory is JobSpec.Dir or Options.WorkDir"},
	{"--wrap", "the command is JobSpec.Command"},
	{"--parsable", "gaffer reads sbatch's output itself"},
	{"--export", "set Options.Env or JobSpec.Env"},
	{"--export-file", "set Options.Env or JobSpec.Env"},
	{"--array", "gaffer submits one Slurm job per gaffer job"},
	{"--wait", "gaffer polls; a waiting sbatch would block submission"},
	{"--hold", "a held job would never run"},
}

// reservedShort maps short sbatch options to the long one they stand for.
var reservedShort = map[byte]string{
	'c': "--cpus-per-task", 'n': "--ntasks", 't': "--time", 'p': "--partition",
	'G': "--gpus", 'J': "--job-name", 'o': "--output", 'e': "--error",
	'D': "--chdir", 'a': "--array", 'W': "--wait", 'H': "--hold",
}

// checkExtraArgs refuses arguments that collide with the adapter's own.
func checkExtraArgs(args []string) error {
	for _, a := range args {
		if strings.ContainsRune(a, 0) {
			return fmt.Errorf("%w: sbatch argument %q holds a NUL byte", ErrBadOption, a)
		}
		var long string
		switch {
		case strings.HasPrefix(a, "--"):
			long, _, _ = strings.Cut(a, "=")
		case len(a) >= 2 && a[0] == '-':
			long = reservedShort[a[1]]
		}
		if long == "" {
			continue
		}
		for _, r := range reservedLong {
			// sbatch, like getopt_long, also takes unambiguous
			// abbreviations such as --part for --partition.
			if long == r.name || (len(long) > 4 && strings.HasPrefix(r.name, long)) {
				return &ConflictingArgError{Arg: a, Use: r.use}
			}
		}
	}
	return nil
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// checkEnv refuses variables a POSIX shell cannot export.
func checkEnv(env map[string]string) error {
	for k, v := range env {
		if !envName.MatchString(k) {
			return fmt.Errorf("%w: environment variable name %q is not a shell name", ErrBadOption, k)
		}
		if strings.ContainsRune(v, 0) {
			return fmt.Errorf("%w: environment variable %s holds a NUL byte", ErrBadOption, k)
		}
	}
	return nil
}

// withDefaults fills zero fields and checks the rest.
func (o Options) withDefaults() (Options, error) {
	if o.Runner == nil {
		o.Runner = ExecRunner{}
	}
	if o.PollInterval <= 0 {
		o.PollInterval = defaultPollInterval
	}
	if o.MaxIDsPerQuery <= 0 {
		o.MaxIDsPerQuery = defaultMaxIDs
	}
	if o.CommandTimeout <= 0 {
		o.CommandTimeout = defaultCommandTimeout
	}
	if o.KillTimeout <= 0 {
		o.KillTimeout = defaultKillTimeout
	}
	if o.SubmitRetries == 0 {
		o.SubmitRetries = 3
	} else if o.SubmitRetries < 0 {
		o.SubmitRetries = 0
	}
	if o.SacctLookback <= 0 {
		o.SacctLookback = defaultLookback
	}
	if o.NamePrefix == "" {
		o.NamePrefix = "gaffer"
	}
	switch o.Accounting {
	case "":
		o.Accounting = AccountingSacct
	case AccountingSacct, AccountingJobComp, AccountingNone:
	default:
		return o, fmt.Errorf("%w: Accounting %q (want %q, %q or %q)", ErrBadOption, o.Accounting, AccountingSacct, AccountingJobComp, AccountingNone)
	}
	o.Group = o.Group.withDefaults()
	if err := checkExtraArgs(o.ExtraArgs); err != nil {
		return o, err
	}
	if err := checkEnv(o.Env); err != nil {
		return o, err
	}
	return o, nil
}
