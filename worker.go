package gaffer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/gafferhq/gaffer/services"
)

// WorkerArg is the first argument that starts a program in worker mode.
const WorkerArg = "__gaffer_worker__"

// ServeWorker turns the program into a gaffer worker when it was started
// as one, and returns at once otherwise. Call it first thing in main (and
// in TestMain, for tests that use subprocess workers):
//
//	func main() {
//		gaffer.ServeWorker()
//		...
//	}
//
// In worker mode it runs one job and exits the process: it reads the
// job's input from the job's folder, runs the registered function, writes
// the result (return value, new successors, timings) to the folder by
// temporary file and rename, and exits 0 on success, 1 on failure.
func ServeWorker() {
	if len(os.Args) < 2 || os.Args[1] != WorkerArg {
		return
	}
	os.Exit(workerMain(os.Args[2:]))
}

// envelope is a job's input file: everything a worker needs.
type envelope struct {
	Job     JobID           `json:"job"`
	Kind    string          `json:"kind"`
	Name    string          `json:"name,omitempty"`
	Attempt int             `json:"attempt"`
	Epoch   uint64          `json:"epoch"`
	Seq     uint64          `json:"seq"`
	WorkDir string          `json:"work_dir"`
	Input   json.RawMessage `json:"input"`
	// For a service: how often to check it and look for the stop flag.
	Service     bool          `json:"service,omitempty"`
	ServicePoll time.Duration `json:"service_poll,omitempty"`
}

// outcome is what running a job produced: the result file's content.
type outcome struct {
	Job       JobID           `json:"job"`
	Attempt   int             `json:"attempt"`
	Epoch     uint64          `json:"epoch"`
	Seq       uint64          `json:"seq"`
	OK        bool            `json:"ok"`
	Error     string          `json:"error,omitempty"`
	Permanent bool            `json:"permanent,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Graph     *fragment       `json:"graph,omitempty"`
	LogTail   string          `json:"log_tail,omitempty"`
	Started   time.Time       `json:"started"`
	Ended     time.Time       `json:"ended"`
}

const (
	inputFile  = "input.json"
	logTailMax = 4 << 10
)

func resultFile(epoch, seq uint64) string { return fmt.Sprintf("result.%d.%d.json", epoch, seq) }

// stopFile is the flag the leader creates in a service's folder to stop
// it; startedName names the file a service host writes, in the work
// directory's started folder, once the service has started. They carry
// the epoch and number, so an instance left by an earlier leader
// never takes a flag meant for a later one.
func stopFile(epoch, seq uint64) string { return fmt.Sprintf("stop.%d.%d", epoch, seq) }
func startedName(id JobID, epoch, seq uint64) string {
	return fmt.Sprintf("%d.%d.%d.json", uint64(id), epoch, seq)
}

const startedDir = "started"

// startReport is what a service host reports once Start has returned.
type startReport struct {
	Job   JobID           `json:"job"`
	Epoch uint64          `json:"epoch"`
	Seq   uint64          `json:"seq"`
	Value json.RawMessage `json:"value"`
}

// svcHooks connect a service host to its leader: how to report the
// start, and how it learns to stop.
type svcHooks struct {
	started       func([]byte) error
	stop          <-chan struct{}
	stopRequested func() bool
}

func logFile(epoch, seq uint64) string { return fmt.Sprintf("log.%d.%d.txt", epoch, seq) }

// runJob runs one job body and reports what it produced. It never
// panics: a panic in the body is a failure of the job.
func runJob(ctx context.Context, env *envelope, logOut io.Writer, logBase slog.Handler, hooks *svcHooks) (out *outcome) {
	out = &outcome{Job: env.Job, Attempt: env.Attempt, Epoch: env.Epoch, Seq: env.Seq, Started: time.Now()}
	jc := newJobContext(env.Job, env.Kind, env.Name, env.Attempt, env.WorkDir, logOut, logBase)
	defer func() {
		jc.cleanup()
		if r := recover(); r != nil {
			out.OK, out.Error = false, fmt.Sprintf("panic: %v\n%s", r, debug.Stack())
		}
		out.Ended = time.Now()
	}()
	reg, ok := lookupType(env.Kind)
	if !ok {
		out.Error = fmt.Errorf("%w: job %s has type %q, which this program has not registered", ErrUnknownJobType, jc.display(), env.Kind).Error()
		out.Permanent = true
		return out
	}
	if env.Service != (reg.host != nil) {
		out.Error = fmt.Errorf("%w: %s: %q is registered as a job type and used as a service, or the other way round", ErrUnknownJobType, jc.display(), env.Kind).Error()
		out.Permanent = true
		return out
	}
	if reg.host != nil {
		if hooks == nil {
			hooks = &svcHooks{started: func([]byte) error { return errors.New("no leader to report to") }}
		}
		err := reg.host(ctx, jc, env.Input, hooks.started, hooks.stop,
			services.Options{PollInterval: env.ServicePoll, StopRequested: hooks.stopRequested})
		if err != nil {
			var pe *permanentError
			out.Permanent = errors.As(err, &pe)
			out.Error = err.Error()
			return out
		}
		out.OK, out.Result = true, json.RawMessage("null")
		return out
	}
	res, err := reg.run(ctx, jc, env.Input)
	if err == nil {
		out.Graph, err = collect(jc.self, slices.Concat(jc.self.children, jc.self.followOns, jc.self.services))
		if err != nil {
			err = &permanentError{fmt.Errorf("job %s: %w", jc.display(), err)}
		}
	}
	if err != nil {
		var pe *permanentError
		out.Permanent = errors.As(err, &pe)
		out.Error = err.Error()
		out.Graph = nil
		return out
	}
	out.OK, out.Result = true, res
	return out
}

func workerMain(args []string) int {
	if len(args) != 1 {
		fmt.Fprintf(os.Stderr, "gaffer worker: want one argument, the job folder; got %q\n", args)
		return 2
	}
	dir := args[0]
	b, err := os.ReadFile(filepath.Join(dir, inputFile))
	if err != nil {
		fmt.Fprintf(os.Stderr, "gaffer worker: %v\n", err)
		return 3
	}
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		fmt.Fprintf(os.Stderr, "gaffer worker: %s: %v\n", filepath.Join(dir, inputFile), err)
		return 3
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var hooks *svcHooks
	if env.Service {
		hooks = fileHooks(dir, &env)
	}
	out := runJob(ctx, &env, os.Stderr, nil, hooks)
	if !out.OK && ctx.Err() != nil {
		// Stopped by a signal (a kill, a scheduler's time limit): the job
		// did not finish, so leave no result. The batch system reports
		// why it ended, and a resumed leader does not count a kill as a
		// failed attempt.
		fmt.Fprintf(os.Stderr, "gaffer worker: job %s stopped by a signal: %s\n", env.Job, out.Error)
		return 143
	}
	if !out.OK {
		fmt.Fprintf(os.Stderr, "gaffer worker: job %s failed: %s\n", env.Job, out.Error)
	}
	if err := writeResult(dir, out); err != nil {
		fmt.Fprintf(os.Stderr, "gaffer worker: %v\n", err)
		return 4
	}
	if !out.OK {
		return 1
	}
	return 0
}

// writeResult writes the outcome into the job's folder atomically: a
// leader that reads it sees all of it or none.
func writeResult(dir string, out *outcome) error {
	b, err := json.Marshal(out)
	if err != nil {
		return fmt.Errorf("encoding result: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, resultFile(out.Epoch, out.Seq)), b, true)
}

// writeFileAtomic writes b to path by temporary file and rename. With
// sync, the data reaches the disk before the rename: a worker's result
// must survive a machine crash; the leader's input files need not, since
// the leader writes them again whenever it issues the job.
func writeFileAtomic(path string, b []byte, sync bool) error {
	tmp := path + ".tmp" + strconv.Itoa(os.Getpid())
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// readTail returns the last max bytes of the file at path, or "".
func readTail(path string, max int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := st.Size() - max
	if off < 0 {
		off = 0
	}
	b := make([]byte, st.Size()-off)
	n, _ := f.ReadAt(b, off)
	return string(b[:n])
}

// fileHooks connect a service host in a worker process to its leader
// through files: the start is reported by a file in the work directory's
// started folder (written by temporary file and rename), and the leader
// asks for a stop by creating a flag in the job's folder. A host also
// stops when its input file is replaced: a later leader has issued the
// service again, and this instance, left by an earlier one, is stale.
func fileHooks(dir string, env *envelope) *svcHooks {
	inputPath := filepath.Join(dir, inputFile)
	stopPath := filepath.Join(dir, stopFile(env.Epoch, env.Seq))
	orig, _ := os.Stat(inputPath)
	return &svcHooks{
		started: func(v []byte) error {
			b, err := json.Marshal(startReport{Job: env.Job, Epoch: env.Epoch, Seq: env.Seq, Value: v})
			if err != nil {
				return err
			}
			d := filepath.Join(env.WorkDir, startedDir)
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
			return writeFileAtomic(filepath.Join(d, startedName(env.Job, env.Epoch, env.Seq)), b, true)
		},
		stopRequested: func() bool {
			if _, err := os.Stat(stopPath); err == nil {
				return true
			}
			now, err := os.Stat(inputPath)
			return orig != nil && (err != nil || !os.SameFile(orig, now) || !now.ModTime().Equal(orig.ModTime()))
		},
	}
}
