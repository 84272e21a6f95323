package gridengine

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"
)

// Accounting says whether the adapter reads the exit status of a job that
// has left qstat from Grid Engine's accounting.
type Accounting string

const (
	// AccountingQacct runs qacct: the default. Grid Engine writes the
	// accounting file on every cluster unless reporting_params says
	// accounting=false.
	AccountingQacct Accounting = "qacct"
	// AccountingNone never runs qacct: a job that left qstat is reported
	// at once with an unknown exit status (batchsystem.ExitUnavailable),
	// and the leader relies on the result file its worker wrote.
	AccountingNone Accounting = "none"
)

// Options configure a BatchSystem. The zero value works on a cluster with
// a parallel environment named "smp" whose allocation rule keeps a job's
// slots on one host (Debian's example, and most sites have one).
type Options struct {
	// Runner runs the Grid Engine commands; nil means ExecRunner{} (PATH).
	Runner Runner
	// Logger receives debug and warning messages; nil discards them.
	Logger *slog.Logger

	// PollInterval is the least time between two status queries. One
	// query (qstat -xml) covers every job of the user, however many there
	// are and however often the leader asks. Default 5 s.
	PollInterval time.Duration
	// CommandTimeout bounds each command (default 2 minutes).
	CommandTimeout time.Duration
	// KillTimeout bounds how long Kill and Shutdown wait for Grid Engine
	// to show that deleted jobs left qstat (default 5 minutes).
	KillTimeout time.Duration
	// SubmitRetries is how many times a qsub or qdel that failed because
	// the qmaster was busy or unreachable is retried (default 3; -1 for
	// none).
	SubmitRetries int
	// MaxIDsPerQuery bounds the job numbers named on one qdel or qstat -j
	// command line (default 1000).
	MaxIDsPerQuery int

	// Accounting says whether to run qacct for jobs that left qstat.
	Accounting Accounting
	// AccountingInterval is the least time between two qacct runs
	// (default: PollInterval). One qacct covers every job waiting for its
	// record. qacct reads the whole accounting file each time, which on a
	// busy cluster is large: do not make this shorter than it must be.
	AccountingInterval time.Duration
	// AccountingWait is how long a job may be missing from both qstat and
	// qacct before it is reported lost (default 5 minutes). The qmaster
	// writes accounting records in batches (reporting_params flush_time,
	// 15 s by default), and a job deleted before it started gets no record
	// at all.
	AccountingWait time.Duration
	// AccountingLookback is how far before its adoption qacct searches
	// for an adopted job that has left qstat (default 24 hours). Jobs this
	// BatchSystem submitted are searched from their start.
	AccountingLookback time.Duration

	// Queue, if set, is passed as -q: the cluster queue (or queue
	// instances) the jobs may run in. "" lets the scheduler choose.
	Queue string
	// ParallelEnv is the parallel environment that jobs asking for more
	// than one core request with `-pe <ParallelEnv> <cores>` (default
	// "smp"). Its allocation rule must be $pe_slots, so that all slots are
	// on one host: a gaffer job is one process.
	ParallelEnv string
	// MemoryResource is the complex that memory requests name, as
	// `-l <MemoryResource>=<MiB>M` (default "mem_free"). If the complex is
	// a per-slot consumable (qconf -sc says YES), the request is divided
	// by the job's slots. Sites that enforce memory with h_vmem may name
	// it here, but h_vmem limits address space, not memory: Go programs
	// reserve far more address space than they use, and a worker built
	// with the race detector reserves terabytes.
	MemoryResource string
	// IgnoreMemory leaves memory requests out.
	IgnoreMemory bool
	// GPUResource is the complex that GPU requests name, as
	// `-l <GPUResource>=<n>` ("" by default: Grid Engine has no standard
	// one, so jobs asking for GPUs are refused).
	GPUResource string
	// DiskResource is the complex that scratch disk requests name, as
	// `-l <DiskResource>=<MiB>M` ("" by default: disk is not requested).
	DiskResource string
	// NamePrefix starts every job name (default "gaffer").
	NamePrefix string
	// WorkDir is the working directory for jobs whose JobSpec.Dir is
	// empty. It must be on a file system every host sees. "" means the
	// leader's current directory (qsub -cwd).
	WorkDir string
	// NoInheritEnv leaves out qsub -V. By default a job gets the leader's
	// environment, as Toil's Grid Engine jobs do; without -V it gets the
	// execution daemon's (PATH included), plus Env and JobSpec.Env.
	NoInheritEnv bool
	// NoVerify leaves out `qsub -w e`. With it (the default) qsub refuses
	// a job no queue could ever run, instead of leaving it waiting
	// forever; on a very large cluster the check slows every submission.
	NoVerify bool
	// ExtraArgs are added to every qsub command line, e.g. "-P", "lab",
	// "-l", "arch=lx-amd64". Options the adapter sets itself are refused by
	// New.
	ExtraArgs []string
	// Env is exported to every job, under JobSpec.Env (which wins).
	Env map[string]string
}

const (
	defaultPollInterval   = 5 * time.Second
	defaultCommandTimeout = 2 * time.Minute
	defaultKillTimeout    = 5 * time.Minute
	defaultAcctWait       = 5 * time.Minute
	defaultLookback       = 24 * time.Hour
	defaultMaxIDs         = 1000
)

// ErrBadOption is matched by errors from New for options that cannot work.
var ErrBadOption = errors.New("gridengine: bad option")

// ConflictingArgError is an ExtraArgs entry that collides with what the
// adapter sets itself.
type ConflictingArgError struct {
	Arg string // as the user wrote it
	Use string // what to use instead
}

func (e *ConflictingArgError) Error() string {
	return fmt.Sprintf("gridengine: qsub argument %q conflicts with what gaffer sets itself; %s", e.Arg, e.Use)
}

// Is reports that e is an ErrBadOption.
func (e *ConflictingArgError) Is(target error) bool { return target == ErrBadOption }

// reservedFlags are qsub options the adapter sets, or that would break it.
var reservedFlags = map[string]string{
	"-N":        "names are derived from the job; set Options.NamePrefix",
	"-o":        "output goes to JobSpec.LogPath",
	"-e":        "output goes to JobSpec.LogPath",
	"-j":        "gaffer merges standard error into the log",
	"-S":        "gaffer's job script runs under /bin/sh",
	"-b":        "gaffer submits a script, which keeps arguments quoted",
	"-pe":       "cores come from the job's requirements; set Options.ParallelEnv",
	"-wd":       "the directory is JobSpec.Dir or Options.WorkDir",
	"-cwd":      "the directory is JobSpec.Dir or Options.WorkDir",
	"-V":        "set Options.NoInheritEnv to leave it out",
	"-v":        "set Options.Env or JobSpec.Env",
	"-terse":    "gaffer reads qsub's output itself",
	"-sync":     "gaffer polls; a waiting qsub would block submission",
	"-h":        "a held job would never run",
	"-t":        "gaffer submits one Grid Engine job per gaffer job",
	"-w":        "set Options.NoVerify",
	"-q":        "set Options.Queue",
	"-now":      "an immediate job fails when no slot is free at once",
	"-@":        "an option file could set any of gaffer's options",
	"-clear":    "it would drop gaffer's own options",
	"-verify":   "gaffer submits jobs",
	"-shell":    "gaffer submits a script",
	"-tc":       "gaffer submits no array jobs",
	"-hold_jid": "gaffer orders jobs itself",
}

var shellName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// checkEnv refuses variables a POSIX shell cannot export.
func checkEnv(env map[string]string) error {
	for k, v := range env {
		if !shellName.MatchString(k) {
			return fmt.Errorf("%w: environment variable name %q is not a shell name", ErrBadOption, k)
		}
		if strings.ContainsRune(v, 0) {
			return fmt.Errorf("%w: environment variable %s holds a NUL byte", ErrBadOption, k)
		}
	}
	return nil
}

// checkExtraArgs refuses arguments that collide with the adapter's own,
// including -l requests for the resources it computes.
func (o Options) checkExtraArgs() error {
	owned := map[string]string{"h_rt": "the time limit comes from the job's Walltime"}
	if !o.IgnoreMemory {
		owned[o.MemoryResource] = "memory comes from the job's requirements"
	}
	if o.GPUResource != "" {
		owned[o.GPUResource] = "accelerators come from the job's requirements"
	}
	if o.DiskResource != "" {
		owned[o.DiskResource] = "disk comes from the job's requirements"
	}
	for i, a := range o.ExtraArgs {
		if strings.ContainsAny(a, "\x00\n") {
			return fmt.Errorf("%w: qsub argument %q holds a NUL or newline", ErrBadOption, a)
		}
		if use, ok := reservedFlags[a]; ok {
			return &ConflictingArgError{Arg: a, Use: use}
		}
		if a != "-l" || i+1 >= len(o.ExtraArgs) {
			continue
		}
		for _, req := range strings.Split(o.ExtraArgs[i+1], ",") {
			name, _, _ := strings.Cut(req, "=")
			if use, ok := owned[strings.TrimSpace(name)]; ok {
				return &ConflictingArgError{Arg: "-l " + req, Use: use}
			}
		}
	}
	return nil
}

// validName accepts what the adapter puts in job names and qsub values:
// characters no Grid Engine tool treats specially.
var validName = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// withDefaults fills zero fields and checks the rest.
func (o Options) withDefaults() (Options, error) {
	if o.Runner == nil {
		o.Runner = ExecRunner{}
	}
	if o.PollInterval <= 0 {
		o.PollInterval = defaultPollInterval
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
	if o.MaxIDsPerQuery <= 0 {
		o.MaxIDsPerQuery = defaultMaxIDs
	}
	if o.AccountingInterval <= 0 {
		o.AccountingInterval = o.PollInterval
	}
	if o.AccountingWait <= 0 {
		o.AccountingWait = defaultAcctWait
	}
	if o.AccountingLookback <= 0 {
		o.AccountingLookback = defaultLookback
	}
	if o.ParallelEnv == "" {
		o.ParallelEnv = "smp"
	}
	if o.MemoryResource == "" {
		o.MemoryResource = "mem_free"
	}
	if o.NamePrefix == "" {
		o.NamePrefix = "gaffer"
	}
	switch o.Accounting {
	case "":
		o.Accounting = AccountingQacct
	case AccountingQacct, AccountingNone:
	default:
		return o, fmt.Errorf("%w: Accounting %q (want %q or %q)", ErrBadOption, o.Accounting, AccountingQacct, AccountingNone)
	}
	for what, v := range map[string]string{
		"NamePrefix": o.NamePrefix, "ParallelEnv": o.ParallelEnv, "MemoryResource": o.MemoryResource,
	} {
		if !validName.MatchString(v) {
			return o, fmt.Errorf("%w: %s %q: use letters, digits, '_', '.' and '-'", ErrBadOption, what, v)
		}
	}
	for what, v := range map[string]string{"GPUResource": o.GPUResource, "DiskResource": o.DiskResource} {
		if v != "" && !validName.MatchString(v) {
			return o, fmt.Errorf("%w: %s %q: use letters, digits, '_', '.' and '-'", ErrBadOption, what, v)
		}
	}
	if len(o.NamePrefix) > maxPrefixLen {
		return o, fmt.Errorf("%w: NamePrefix %q is longer than %d characters", ErrBadOption, o.NamePrefix, maxPrefixLen)
	}
	if c := o.NamePrefix[0]; c >= '0' && c <= '9' {
		// qacct -j reads a name of digits as a job number.
		return o, fmt.Errorf("%w: NamePrefix %q starts with a digit", ErrBadOption, o.NamePrefix)
	}
	if strings.ContainsAny(o.Queue, "\x00\n ") || strings.ContainsAny(o.WorkDir, "\x00\n") {
		return o, fmt.Errorf("%w: Queue %q or WorkDir %q holds a space, NUL or newline", ErrBadOption, o.Queue, o.WorkDir)
	}
	if err := o.checkExtraArgs(); err != nil {
		return o, err
	}
	if err := checkEnv(o.Env); err != nil {
		return o, err
	}
	return o, nil
}
