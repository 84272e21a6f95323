package gaffer

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/jobstore"
	"github.com/gafferhq/gaffer/scaler"
)

// Config configures a Leader. The zero value of every field but Store
// means a documented default.
type Config struct {
	// Store is the path of the workflow's bbolt file, on local disk. It is
	// created if missing and resumed if it holds a workflow.
	Store string
	// JobStore, if set, is used instead of opening Store. The leader does
	// not close it.
	JobStore jobstore.Store
	// WorkDir holds the per-job folders that workers read and write, the
	// file store and scratch space. Workers on other machines must see it
	// at the same path. Empty means Store + ".work".
	WorkDir string

	// BatchSystem runs the jobs. Nil means an in-process local batch
	// system sized to this machine, which the leader shuts down on Close.
	BatchSystem batchsystem.BatchSystem
	// BatchSystems, instead of BatchSystem, gives the leader several
	// batch systems by name, such as "inprocess", "processes" and
	// "slurm"; the leader does not shut them down. Each job runs on one,
	// chosen the first time it is issued and kept with the job for life:
	// its retries, restarts and later leaders use it (a later leader
	// without a batch system of that name refuses to resume, naming the
	// job). Route chooses; without a Route, a job runs where it asked
	// to (RunOn), or on the only batch system if there is one. A job that
	// no batch system can take, or whose requirements its batch system
	// can never meet, fails for good with an error that names it and the
	// choice.
	BatchSystems map[string]batchsystem.BatchSystem
	// Route chooses a job's batch system from what is known of it (its
	// type, name, categories, requirements, RunOn). It returns a key of
	// BatchSystems; "" leaves the choice to the job (RunOn), and with
	// none to the only batch system if there is one, and otherwise
	// refuses it; a name not in BatchSystems refuses it. It must decide
	// from its argument alone, and quickly: the leader calls it in its
	// loop, once per job. A panic in it refuses the job.
	Route func(RouteInfo) string
	// ScaledBatchSystem names the batch system of BatchSystems whose
	// cluster Provisioner grows and shrinks: the scaler sees only the
	// jobs routed to it. Required with a Provisioner and BatchSystems.
	ScaledBatchSystem string
	// WorkerCommand is the argv prefix that starts this program as a
	// worker; gaffer appends its own arguments. Empty means the running
	// executable. Only batch systems that start processes use it.
	WorkerCommand []string
	// WorkerEnv is extra environment for workers.
	WorkerEnv map[string]string

	// DefaultRequirements fill in what jobs leave zero. Zero fields here
	// mean Toil's defaults: 1 core, 2 GiB of memory, 2 GiB of disk.
	DefaultRequirements Requirements
	// RetryCount is how many times a failed job is retried. 0 means 1;
	// NoRetries means none.
	RetryCount int
	// RetryBackoff is the wait before the first retry; each later retry
	// waits RetryBackoffFactor times longer. 0 means 2 s; -1 means retry
	// at once. RetryBackoffFactor 0 means 3.
	RetryBackoff       time.Duration
	RetryBackoffFactor float64
	// MaxRetryBackoff caps the wait before a retry; 0 means 1 hour.
	MaxRetryBackoff time.Duration

	// MaxIssued caps jobs handed to the batch system and not yet
	// finished; the rest wait, ready, in the leader. 0 means 10,000; -1
	// means no cap. Services do not count against it (see MaxServices).
	MaxIssued int
	// MaxBatch caps the job events committed in one store transaction.
	// 0 means 10,000.
	MaxBatch int
	// PollInterval is the longest the leader waits for a job event before
	// it does its periodic checks. 0 means 1 s.
	PollInterval time.Duration

	// RescueInterval is how often, while no job event arrives, the leader
	// looks for jobs the batch system lost or that run too long; 0 means
	// 1 minute (Toil's default). MissingChecks is how many checks in a row
	// a job must be missing from the batch system's list before it is
	// counted as failed; 0 means 3. MaxJobDuration, if positive, is the
	// longest a job may run before it is killed and counted as failed; 0
	// means no limit.
	RescueInterval time.Duration
	MissingChecks  int
	MaxJobDuration time.Duration

	// MaxServices caps the services holding a place at once (issued, or
	// ready to be); the rest wait in a queue, first come first served.
	// MaxPreemptibleServices is the separate cap for preemptible services.
	// 0 means no cap. A cap below what one client needs at once is a
	// service deadlock, which is detected and reported.
	MaxServices            int
	MaxPreemptibleServices int
	// ServicePollInterval is how often a running service is checked (if
	// it is a services.Checker) and looks for its stop flag; 0 means 1 s.
	// (Toil's default is 60 s; a flag on a shared folder is cheap to poll,
	// and a service that stops sooner gives its slot back sooner.)
	ServicePollInterval time.Duration
	// DeadlockWait is how long every running job may be a service, with
	// nothing else moving, before the run ends with a *DeadlockError; the
	// leader checks every DeadlockCheckInterval. 0 means 60 s and 30 s
	// (Toil's defaults); DeadlockWait -1 turns detection off.
	DeadlockWait          time.Duration
	DeadlockCheckInterval time.Duration

	// CategoryLimits caps, by category name (the Category job option), how
	// many jobs of the category may be issued at once; jobs over a cap wait
	// in the leader, in order. A category without an entry has no cap;
	// a cap of 0 holds every job of the category.
	CategoryLimits map[string]int
	// ControlInterval is how often the leader looks for requests from
	// other processes (RequestCancel); 0 means 1 s.
	ControlInterval time.Duration

	// Provisioner, if set, lets the leader grow and shrink the cluster its
	// batch system runs on: a cluster scaler runs beside the leader,
	// learns from finished jobs and sizes the cluster to the issued ones.
	Provisioner scaler.Provisioner
	// Scaling configures that scaler; its zero value means the scaler's
	// defaults.
	Scaling scaler.Config

	// LogLimit caps the log kept of each failed attempt, in bytes (under
	// WorkDir/logs/<job>/; its record in the store names the file): a
	// longer log keeps its end, after a line saying how much was cut.
	// 0 means 1 MiB; -1 keeps no logs (a failure's error still carries
	// the last 4 KiB). KeepSuccessLogs keeps the logs of successful
	// attempts too.
	LogLimit        int64
	KeepSuccessLogs bool

	// MaxLeaderDeaths: a job running in the leader's process each of
	// the last MaxLeaderDeaths times a leader died (killed it with
	// os.Exit, a crash outside Go, its memory) is charged a failed
	// attempt, so that resuming does not die again for ever. 0 means 3;
	// -1 never charges. Jobs in worker processes are never charged for
	// their leader's death.
	MaxLeaderDeaths int

	// NoSync skips fsync at commits: faster, not durable. Tests only.
	NoSync bool
	// Logger receives the leader's structured logs; nil means silence.
	Logger *slog.Logger
	// Metrics, if set, receives what the leader does as the store
	// records it: attempts issued and ended, commits and the queues'
	// lengths (see Metrics, and the package metrics). Nil means none.
	Metrics Metrics
}

// NoRetries as Config.RetryCount means failed jobs are not retried.
const NoRetries = -1

func (c Config) withDefaults() (Config, error) {
	if c.Store == "" && c.JobStore == nil {
		return c, fmt.Errorf("gaffer: Config.Store: a store path is required")
	}
	if err := c.checkRoutes(); err != nil {
		return c, err
	}
	if c.WorkDir == "" {
		if c.Store == "" {
			return c, fmt.Errorf("gaffer: Config.WorkDir: required when Config.JobStore is set")
		}
		c.WorkDir = c.Store + ".work"
	}
	// Workers start in other directories, on other machines: every path
	// they are given must be absolute.
	var err error
	if c.Store != "" {
		if c.Store, err = filepath.Abs(c.Store); err != nil {
			return c, fmt.Errorf("gaffer: Config.Store %q: %w", c.Store, err)
		}
	}
	if c.WorkDir, err = filepath.Abs(c.WorkDir); err != nil {
		return c, fmt.Errorf("gaffer: Config.WorkDir %q: %w", c.WorkDir, err)
	}
	d := &c.DefaultRequirements
	if d.Cores == 0 {
		d.Cores = 1
	}
	if d.Memory == 0 {
		d.Memory = 2 << 30
	}
	if d.Disk == 0 {
		d.Disk = 2 << 30
	}
	switch {
	case c.RetryCount == 0:
		c.RetryCount = 1
	case c.RetryCount == NoRetries:
		c.RetryCount = 0
	case c.RetryCount < 0:
		return c, fmt.Errorf("gaffer: Config.RetryCount %d: use NoRetries (-1) or a count", c.RetryCount)
	}
	switch {
	case c.RetryBackoff == 0:
		c.RetryBackoff = 2 * time.Second
	case c.RetryBackoff < 0:
		c.RetryBackoff = 0
	}
	if c.MaxRetryBackoff <= 0 {
		c.MaxRetryBackoff = time.Hour
	}
	if c.RetryBackoffFactor == 0 {
		c.RetryBackoffFactor = 3
	}
	if c.RetryBackoffFactor < 1 {
		return c, fmt.Errorf("gaffer: Config.RetryBackoffFactor %v: must be at least 1", c.RetryBackoffFactor)
	}
	switch {
	case c.MaxIssued == 0:
		c.MaxIssued = 10000
	case c.MaxIssued < -1:
		return c, fmt.Errorf("gaffer: Config.MaxIssued %d: use -1 for no cap", c.MaxIssued)
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 10000
	}
	if c.PollInterval <= 0 {
		c.PollInterval = time.Second
	}
	if c.RescueInterval <= 0 {
		c.RescueInterval = time.Minute
	}
	if c.MissingChecks <= 0 {
		c.MissingChecks = 3
	}
	if c.MaxServices < 0 || c.MaxPreemptibleServices < 0 {
		return c, fmt.Errorf("gaffer: Config.MaxServices, MaxPreemptibleServices: must not be negative (0 means no cap)")
	}
	if c.ServicePollInterval <= 0 {
		c.ServicePollInterval = time.Second
	}
	switch {
	case c.DeadlockWait == 0:
		c.DeadlockWait = time.Minute
	case c.DeadlockWait < -1:
		return c, fmt.Errorf("gaffer: Config.DeadlockWait %v: use -1 to turn detection off", c.DeadlockWait)
	}
	if c.DeadlockCheckInterval <= 0 {
		c.DeadlockCheckInterval = 30 * time.Second
	}
	for name, n := range c.CategoryLimits {
		if n < 0 {
			return c, fmt.Errorf("gaffer: Config.CategoryLimits[%q] = %d: must not be negative", name, n)
		}
	}
	switch {
	case c.LogLimit == 0:
		c.LogLimit = 1 << 20
	case c.LogLimit < -1:
		return c, fmt.Errorf("gaffer: Config.LogLimit %d: use -1 to keep no logs", c.LogLimit)
	}
	switch {
	case c.MaxLeaderDeaths == 0:
		c.MaxLeaderDeaths = 3
	case c.MaxLeaderDeaths < -1:
		return c, fmt.Errorf("gaffer: Config.MaxLeaderDeaths %d: use -1 to never charge", c.MaxLeaderDeaths)
	}
	if c.ControlInterval <= 0 {
		c.ControlInterval = time.Second
	}
	if len(c.WorkerCommand) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return c, fmt.Errorf("gaffer: finding the worker executable: %w", err)
		}
		c.WorkerCommand = []string{exe}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

func (c Config) fill(r Requirements) Requirements {
	if r.Cores == 0 {
		r.Cores = c.DefaultRequirements.Cores
	}
	if r.Memory == 0 {
		r.Memory = c.DefaultRequirements.Memory
	}
	if r.Disk == 0 {
		r.Disk = c.DefaultRequirements.Disk
	}
	if r.Accelerators == nil {
		r.Accelerators = c.DefaultRequirements.Accelerators
	}
	return r
}
