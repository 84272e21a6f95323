package pilot

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Reusing worker processes. Starting a worker process costs a few
// milliseconds of CPU, which on a small allocation is most of what a tiny
// job costs. A ticket whose command is the pilot's own program in worker
// mode with a job folder ([program, WorkerArg, folder]) can instead go to
// a folder worker: the same program started once with [program,
// WorkerArg, FolderArg], which reads "folder<TAB>log\n" lines on its
// standard input, runs each job as the one-job worker would (its output
// to the job's log, its result file in its folder), and answers with the
// job's exit code on a line of its standard output. A job that kills its
// process (os.Exit, a crash) takes only that worker down: the job ends
// with the worker's exit status, and the next job gets a new worker.
// Workers are kept by environment (a job's GOMAXPROCS, its Env), and a
// worker that a kill or a time limit stopped is never reused.

// WorkerArg is the worker-mode argument of gaffer programs
// (gaffer.WorkerArg), and FolderArg the one that follows it for a
// folder worker.
const (
	WorkerArg = "__gaffer_worker__"
	FolderArg = "folders"
)

// reusable reports whether ticket t can run in a folder worker of the
// pilot's own program, self.
func reusable(t Ticket, self string) bool {
	return canReuse && len(t.Command) == 3 && t.Command[0] == self && t.Command[1] == WorkerArg &&
		t.Command[2] != FolderArg && strings.HasPrefix(t.Command[2], string(os.PathSeparator))
}

type folderWorker struct {
	key  string
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	gone bool // exited, or stopped: not to be reused
}

// envKey names the environment a job's worker runs with.
func envKey(env map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(env)) {
		b.WriteString(k + "=" + env[k] + "\x00")
	}
	return b.String()
}

// startFolderWorker starts a folder worker for jobs like t; its own
// output goes to logw (the pilot's log).
func startFolderWorker(t Ticket, logw io.Writer) (*folderWorker, error) {
	cmd := exec.Command(t.Command[0], WorkerArg, FolderArg)
	cmd.Env = os.Environ()
	for k, v := range t.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stderr = logw
	cmd.SysProcAttr = procAttr()
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting a folder worker %q: %w", t.Command[0], err)
	}
	return &folderWorker{key: envKey(t.Env), cmd: cmd, in: in, out: bufio.NewReader(out)}, nil
}

// run hands t to w and reports its end on the returned channel.
func (w *folderWorker) run(t Ticket, done chan<- jobExit, ended chan<- struct{}) error {
	if _, err := fmt.Fprintf(w.in, "%s\t%s\n", t.Command[2], t.LogPath); err != nil {
		return err
	}
	go func() {
		var ex jobExit
		line, err := w.out.ReadString('\n')
		if code, perr := strconv.Atoi(strings.TrimSpace(line)); err == nil && perr == nil {
			ex.code = code
		} else {
			// The worker died with the job: its exit is the job's.
			w.gone = true
			ex = processExit(w.cmd, w.cmd.Wait())
		}
		done <- ex
		select {
		case ended <- struct{}{}:
		default:
		}
	}()
	return nil
}

// stop ends w: its input closed (it exits between jobs), then killed if
// it has not after grace.
func (w *folderWorker) stop(grace time.Duration) {
	if w.gone {
		return
	}
	w.gone = true
	w.in.Close()
	exited := make(chan struct{})
	go func() { w.cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(grace):
		signalTree(w.cmd.Process, syscall.SIGKILL)
		<-exited
	}
}

// jobExit is how a job ended: its exit code, or the signal that ended
// its process.
type jobExit struct {
	code, signal int
	err          error // the process could not be waited for
}

func processExit(cmd *exec.Cmd, err error) jobExit {
	st := cmd.ProcessState
	if st == nil {
		return jobExit{code: -1, err: err}
	}
	return jobExit{code: st.ExitCode(), signal: exitSignal(st)}
}
