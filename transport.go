package gaffer

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/gafferhq/gaffer/batchsystem"
)

// A transport carries jobs to where they run and what they produce back
// to the leader, without the store: workers never open it (rule 1). The
// leader has one per batch system, chosen by newTransport; nothing else in
// the leader asks how jobs run.
//
// Its methods are called from the leader's loop only, except that what
// prepare sets up runs in the batch system's goroutines or processes.
type transport interface {
	// prepare hands attempt env its input and fills in spec how the batch
	// system runs it: JobSpec.Run, or a folder, log and worker command.
	prepare(env *envelope, spec *batchsystem.JobSpec) error
	// adopt fills in spec for an attempt an earlier leader issued, to be
	// adopted by the batch system; false if this transport's attempts
	// cannot outlive their leader.
	adopt(a attempt, spec *batchsystem.JobSpec) bool
	// take returns what an ended attempt produced.
	take(a attempt, fin *batchsystem.FinishedJob) taken
	// starts returns the start reports of services made since the last
	// call, and a function to call once they are committed.
	starts() ([]startReport, func())
	// stop asks a service's attempt to stop.
	stop(a attempt) error
	// forget drops what the transport keeps for an attempt whose end (or
	// kill) is committed: its folder, its mailbox entry.
	forget(a attempt)
	// close releases what the transport holds once nothing runs.
	close() error
	// diesWithLeader reports whether every attempt dies with the
	// leader's process, so that none can end, or leave a result, while
	// no leader runs: then the leader may issue before its commits land
	// (apply.go, commit pipelining).
	diesWithLeader() bool
}

// taken is what a transport brought back of an ended attempt.
type taken struct {
	out  *outcome // nil if none reached the leader
	tail string   // the end of its log, for an attempt that left no outcome
	log  string   // where its log was kept (logs.go), if it was
	err  error    // why its result could not be read, if it could not
}

// newTransport returns the transport for bs: memory for a batch system
// that runs jobs in the leader's process, pipes to a pool of worker
// processes for one that wants a pool, a folder per job under
// cfg.WorkDir for one that starts worker processes.
func newTransport(bs batchsystem.BatchSystem, cfg Config, log *slog.Logger) transport {
	keep := keepLogs{workDir: cfg.WorkDir, limit: cfg.LogLimit, success: cfg.KeepSuccessLogs}
	if wp, ok := bs.(batchsystem.WorkerPooler); ok {
		if opts, ok := wp.WorkerPool(); ok {
			return newPoolTransport(opts, cfg, keep, log)
		}
	}
	if ip, ok := bs.(batchsystem.InProcess); ok && ip.InProcess() {
		return newMemTransport(log, keep)
	}
	return &dirTransport{log: log, keep: keep, workDir: cfg.WorkDir, command: cfg.WorkerCommand, env: cfg.WorkerEnv}
}

// batchSystemName names bs in the attempt records: its Name method, if it
// has one, or else its package ("local", "slurm").
func batchSystemName(bs batchsystem.BatchSystem) string {
	if n, ok := bs.(interface{ Name() string }); ok {
		return n.Name()
	}
	t := strings.TrimPrefix(fmt.Sprintf("%T", bs), "*")
	pkg, _, _ := strings.Cut(t, ".")
	return pkg
}

// keepLogs says which attempts' logs a transport keeps, where, and how
// much of each.
type keepLogs struct {
	workDir string
	limit   int64 // -1: none
	success bool
}

func (k keepLogs) wants(ok bool) bool { return k.limit >= 0 && (!ok || k.success) }
