package gaffer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"maps"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/batchsystem/pilot"
	"github.com/gafferhq/gaffer/internal/rusage"
)

// dirTransport carries attempts to worker processes through a folder per
// job under the work directory, which workers on other machines see at
// the same path:
//
//	jobs/<id>/input.json              the envelope, written by the leader
//	jobs/<id>/result.<epoch>.<seq>.json  the outcome, written by the worker
//	                                  (fsynced, by temporary file and rename)
//	jobs/<id>/log.<epoch>.<seq>.txt   the worker's output
//	jobs/<id>/stop.<epoch>.<seq>      a service's stop flag
//	started/<id>.<epoch>.<seq>.json   a service's start report
//
// Names carry the epoch and number, so that files of an attempt
// an earlier leader issued are never taken for a later one's. A result
// file survives its leader: the next one adopts it (adoptLeftovers).
type dirTransport struct {
	log      *slog.Logger
	keep     keepLogs
	workDir  string
	command  []string
	env      map[string]string
	procsEnv map[int]map[string]string // worker environments by GOMAXPROCS
}

const (
	inputFile  = "input.json"
	startedDir = "started"
)

func resultFile(epoch, seq uint64) string { return fmt.Sprintf("result.%d.%d.json", epoch, seq) }
func logFile(epoch, seq uint64) string    { return fmt.Sprintf("log.%d.%d.txt", epoch, seq) }

// stopFile is the flag the leader creates in a service's folder to stop
// it; startedName names the file a service host writes, in the work
// directory's started folder, once the service has started.
func stopFile(epoch, seq uint64) string { return fmt.Sprintf("stop.%d.%d", epoch, seq) }
func startedName(id JobID, epoch, seq uint64) string {
	return fmt.Sprintf("%d.%d.%d.json", uint64(id), epoch, seq)
}

func jobDir(workDir string, id JobID) string {
	return filepath.Join(workDir, "jobs", strconv.FormatUint(uint64(id), 10))
}

// fill names the attempt's folder, log and worker command in spec.
func (t *dirTransport) fill(a attempt, spec *batchsystem.JobSpec) {
	spec.Dir = jobDir(t.workDir, a.job)
	spec.LogPath = filepath.Join(spec.Dir, logFile(a.epoch, a.seq))
	spec.Command = append(slices.Clip(t.command), WorkerArg, spec.Dir)
	spec.Env = t.workerEnv(spec.Requirements.Cores)
	spec.WorkDir = t.workDir
	spec.PilotCommand = append(slices.Clip(t.command), pilot.Arg)
}

func (t *dirTransport) prepare(env *envelope, spec *batchsystem.JobSpec) error {
	t.fill(attempt{job: env.Job, epoch: env.Epoch, seq: env.Seq}, spec)
	b, err := json.Marshal(env)
	if err == nil {
		if err = os.MkdirAll(spec.Dir, 0o755); err == nil {
			// No fsync: the leader writes the input again whenever it
			// issues the job.
			err = writeFileAtomic(filepath.Join(spec.Dir, inputFile), b, false)
		}
	}
	if err != nil {
		return fmt.Errorf("writing the job's input to %s: %w", spec.Dir, err)
	}
	return nil
}

func (t *dirTransport) adopt(a attempt, spec *batchsystem.JobSpec) bool {
	t.fill(a, spec)
	return true
}

// workerEnv is the environment of a worker asking for cores: the user's
// WorkerEnv, and GOMAXPROCS set to the cores asked for (rounded up), as
// Toil sets OMP_NUM_THREADS. A worker for a tenth of a core has no use
// for a scheduler thread per CPU of the machine, and twenty of them
// starting at once each with a full set cost the kernel dearly.
func (t *dirTransport) workerEnv(cores float64) map[string]string {
	if _, set := t.env["GOMAXPROCS"]; set {
		return t.env
	}
	n := max(1, int(math.Ceil(cores)))
	if t.procsEnv == nil {
		t.procsEnv = map[int]map[string]string{}
	}
	env, ok := t.procsEnv[n]
	if !ok {
		env = maps.Clone(t.env)
		if env == nil {
			env = map[string]string{}
		}
		env["GOMAXPROCS"] = strconv.Itoa(n)
		t.procsEnv[n] = env
	}
	return env
}

func (t *dirTransport) take(a attempt, fin *batchsystem.FinishedJob) taken {
	dir := jobDir(t.workDir, a.job)
	src := filepath.Join(dir, logFile(a.epoch, a.seq))
	var tk taken
	tk.out, tk.err = readOutcome(filepath.Join(dir, resultFile(a.epoch, a.seq)), a.job, a.epoch, a.seq)
	out := tk.out
	if out != nil && !out.OK && out.LogTail == "" || out == nil && (fin.ExitCode != 0 || tk.err != nil) {
		tail := readTail(src, logTailMax)
		if out != nil {
			out.LogTail = tail
		} else {
			tk.tail = tail
		}
	}
	if t.keep.wants(out != nil && out.OK) {
		var err error
		if tk.log, err = keepLogFile(t.workDir, a, src, t.keep.limit); err != nil {
			t.log.Warn("keeping a job's log", "job_id", a.job.String(), "err", err)
		}
	}
	return tk
}

// starts reads the started folder, which holds only reports not yet
// taken: its cost is O(new reports).
func (t *dirTransport) starts() ([]startReport, func()) {
	dir := filepath.Join(t.workDir, startedDir)
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.log.Warn("reading service start reports", "err", err)
	}
	var reports []startReport
	var files []string
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue // a report being written
		}
		path := filepath.Join(dir, e.Name())
		files = append(files, path)
		b, err := os.ReadFile(path)
		var r startReport
		if err != nil || json.Unmarshal(b, &r) != nil {
			t.log.Warn("unreadable service start report; ignored", "file", path)
			continue
		}
		reports = append(reports, r)
	}
	return reports, func() {
		for _, f := range files {
			t.remove(f, os.Remove)
		}
	}
}

func (t *dirTransport) stop(a attempt) error {
	return os.WriteFile(filepath.Join(jobDir(t.workDir, a.job), stopFile(a.epoch, a.seq)), nil, 0o644)
}

func (t *dirTransport) close() error { return nil }

// diesWithLeader is false: a worker process may end while no leader runs
// (it leaves its result in its folder for the next one).
func (t *dirTransport) diesWithLeader() bool { return false }

func (t *dirTransport) forget(a attempt) { t.remove(jobDir(t.workDir, a.job), os.RemoveAll) }

func (t *dirTransport) remove(path string, rm func(string) error) {
	if err := rm(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.log.Warn("removing a file of an ended job", "path", path, "err", err)
	}
}

// leftoverResults reads the results that workers wrote into the job
// folders under workDir, for the graph to take those written while no
// leader ran (graph.leftover). The folders of jobs that keep says are
// over are removed.
func leftoverResults(workDir string, keep func(JobID) bool, log *slog.Logger) ([]*outcome, error) {
	root := filepath.Join(workDir, "jobs")
	entries, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("gaffer: reading job folders: %w", err)
	}
	var outs []*outcome
	for _, e := range entries {
		n, err := strconv.ParseUint(e.Name(), 10, 64)
		if err != nil {
			continue
		}
		id := JobID(n)
		dir := filepath.Join(root, e.Name())
		if !keep(id) {
			// Left over from a job already recorded.
			if err := os.RemoveAll(dir); err != nil {
				log.Warn("removing a left-over job folder", "path", dir, "err", err)
			}
			continue
		}
		files, _ := filepath.Glob(filepath.Join(dir, "result.*.json"))
		for _, f := range files {
			var epoch, seq uint64
			if _, err := fmt.Sscanf(filepath.Base(f), "result.%d.%d.json", &epoch, &seq); err != nil {
				continue // a temporary file
			}
			out, err := readOutcome(f, id, epoch, seq)
			if err != nil {
				// Not taken: the job runs again.
				log.Warn("unreadable result left by an earlier leader", "job_id", id.String(), "err", err)
				continue
			}
			outs = append(outs, out)
		}
	}
	return outs, nil
}

// A result file is a header line with the CRC-32C of the attempt's name
// (job, epoch, issue number) and the body, then the body: the outcome as
// JSON. A file that fails the check or does not decode is a failed
// attempt, with the reason, never a wrong result.
const resultHeader = "gaffer-result crc32c="

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func resultSum(id JobID, epoch, seq uint64, body []byte) uint32 {
	name := fmt.Appendf(nil, "%d.%d.%d\n", uint64(id), epoch, seq)
	return crc32.Update(crc32.Checksum(name, castagnoli), castagnoli, body)
}

// readOutcome reads the result file of attempt epoch.seq of job id: nil
// and no error if there is none.
func readOutcome(path string, id JobID, epoch, seq uint64) (*outcome, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("result file %s: %w", path, err)
	}
	body := b
	if rest, ok := bytes.CutPrefix(b, []byte(resultHeader)); ok {
		line, after, _ := bytes.Cut(rest, []byte("\n"))
		want, perr := strconv.ParseUint(string(line), 16, 32)
		if perr != nil || len(line) != 8 {
			return nil, fmt.Errorf("result file %s: damaged header %q", path, line)
		}
		body = after
		if got := resultSum(id, epoch, seq, body); uint32(want) != got {
			return nil, fmt.Errorf("result file %s: checksum mismatch (stored %08x, computed %08x): the file is damaged", path, want, got)
		}
	}
	var out outcome
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("result file %s: %w", path, err)
	}
	if out.Job != id || out.Epoch != epoch || out.Seq != seq {
		return nil, fmt.Errorf("result file %s: holds job %s attempt %d.%d, not %s %d.%d", path, out.Job, out.Epoch, out.Seq, id, epoch, seq)
	}
	return &out, nil
}

// The worker's side.

func workerMain(args []string) int {
	if len(args) != 1 {
		fmt.Fprintf(os.Stderr, "gaffer worker: want one argument, the job folder; got %q\n", args)
		return 2
	}
	return runFolder(args[0], 0)
}

// runFolder runs the job whose folder is dir, as a one-job worker does,
// and returns the worker's exit code. cpu0 is the process's CPU time
// before the job, for a worker that runs several (worker_folders_unix.go).
func runFolder(dir string, cpu0 time.Duration) int {
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
	// Where the platform does not tell, 0: unknown.
	if cpu, ok := rusage.CPU(); ok {
		out.CPU = cpu - cpu0
	}
	out.MaxRSS, _ = rusage.PeakRSS()
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
	body, err := json.Marshal(out)
	if err != nil {
		return fmt.Errorf("encoding result: %w", err)
	}
	b := fmt.Appendf(nil, "%s%08x\n", resultHeader, resultSum(out.Job, out.Epoch, out.Seq, body))
	return writeFileAtomic(filepath.Join(dir, resultFile(out.Epoch, out.Seq)), append(b, body...), true)
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
