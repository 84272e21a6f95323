package pilot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"syscall"
	"time"
)

// Main runs a pilot from its arguments (the queue root and the pilot's
// name) until it has been idle for its Config.Idle, or until SIGTERM or
// SIGINT. It returns the process's exit status.
func Main(args []string) int {
	if len(args) != 2 {
		fmt.Fprintf(os.Stderr, "gaffer pilot: want two arguments, the queue root and the pilot's name; got %q\n", args)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := Serve(ctx, args[0], args[1], os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "gaffer pilot: %v\n", err)
		return 1
	}
	return 0
}

// running is one job a pilot runs.
type running struct {
	t        Ticket
	cmd      *exec.Cmd     // the job's process, or the folder worker running it
	w        *folderWorker // the folder worker running it, if one does (reuse.go)
	log      io.Closer
	start    time.Time
	done     chan jobExit
	termAt   time.Time // when SIGTERM was sent; zero before
	reason   string    // why the pilot stopped it, if it did
	killSent bool
}

// note appends a line of the pilot's to the job's log, as Slurm writes
// its own there.
func (r *running) note(line string) {
	if r.w == nil {
		fmt.Fprint(r.cmd.Stdout, line) // the job's log, open for its process
		return
	}
	if r.t.LogPath == "" {
		return
	}
	if f, err := os.OpenFile(r.t.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
		f.WriteString(line)
		f.Close()
	}
}

// Serve runs the pilot name of the queue at root. It returns nil when the
// pilot stopped because it was idle or ctx ended. When ctx ends, the jobs
// it runs are killed and no End is written for them: they did not end on
// their own, and the adapter reports them lost.
func Serve(ctx context.Context, root, name string, logw io.Writer) error {
	q := Queue{Root: root}
	var c Config
	if err := readJSON(q.pilotPath(name), &c); err != nil {
		return fmt.Errorf("reading the pilot's configuration: %w", err)
	}
	c.defaults()
	if err := os.MkdirAll(q.claimedDir(name), 0o755); err != nil {
		return err
	}
	node, _ := os.Hostname()
	touch(q.alivePath(name))
	lastBeat := time.Now()
	fmt.Fprintf(logw, "gaffer pilot %s: serving owner %s shape %s with %d slots on %s\n", name, c.Owner, c.Shape, c.Slots, node)

	jobs := map[string]*running{}
	var cache []string // names listed in the shape's folder, not yet tried
	var listedAt time.Time
	lastBusy := time.Now()
	tick := time.NewTicker(c.Poll)
	defer tick.Stop()
	// Folder workers waiting for a job, by environment (reuse.go).
	idle := map[string][]*folderWorker{}
	stopIdle := func() {
		for _, ws := range idle {
			for _, w := range ws {
				w.stop(c.KillGrace)
			}
		}
		clear(idle)
	}
	self := os.Args[0]
	// A job's end wakes the loop at once, so that its slot takes the next
	// job without waiting for the tick: with the tick alone, a slot ran
	// at most one job per Poll.
	ended := make(chan struct{}, 1)
	shapeDir := q.shapeDir(c.Owner, c.Shape)

	for {
		// Reap.
		for n, r := range jobs {
			select {
			case ex := <-r.done:
				end := endOf(r, ex, name, node)
				r.log.Close()
				if w := r.w; w != nil {
					if w.gone || r.reason != "" || ex.code == stoppedCode {
						w.stop(c.KillGrace) // stopped, or died: never reused
					} else {
						idle[w.key] = append(idle[w.key], w)
					}
				}
				if werr := writeJSON(q.donePath(n)+".tmp", q.donePath(n), end); werr != nil {
					fmt.Fprintf(logw, "gaffer pilot %s: recording the end of %s: %v\n", name, n, werr)
				}
				delete(jobs, n)
				lastBusy = time.Now()
			default:
			}
		}
		if ctx.Err() != nil {
			stopAll(jobs, c.KillGrace)
			stopIdle()
			return nil
		}
		// Kill flags and time limits: one stat per running job.
		now := time.Now()
		for n, r := range jobs {
			if r.termAt.IsZero() {
				if _, err := os.Stat(q.killPath(n)); err == nil {
					r.reason = ReasonKilled
				} else if r.t.Walltime > 0 && now.Sub(r.start) > r.t.Walltime {
					r.reason = ReasonTimeout
					r.note(fmt.Sprintf("gaffer pilot %s: *** JOB %s (gaffer job %s) CANCELLED AT %s DUE TO TIME LIMIT (%v) ***\n",
						name, n, r.t.JobID, now.Format("2006-01-02T15:04:05"), r.t.Walltime))
				}
				if r.reason != "" {
					r.termAt = now
					signalTree(r.cmd.Process, syscall.SIGTERM)
				}
			} else if !r.killSent && now.Sub(r.termAt) > c.KillGrace {
				r.killSent = true
				signalTree(r.cmd.Process, syscall.SIGKILL)
			}
		}
		// Claim.
		for len(jobs) < c.Slots {
			if len(cache) == 0 {
				if time.Since(listedAt) < c.Poll {
					break
				}
				listedAt = time.Now()
				names, err := listJSON(shapeDir)
				if err != nil {
					fmt.Fprintf(logw, "gaffer pilot %s: %v\n", name, err)
				}
				sort.Strings(names) // oldest first: names end in a sequence number
				cache = names
				if len(cache) == 0 {
					break
				}
			}
			n := cache[0]
			cache = cache[1:]
			claimed := filepath.Join(q.claimedDir(name), n+".json")
			if err := os.Rename(filepath.Join(shapeDir, n+".json"), claimed); err != nil {
				continue // another pilot took it, or the adapter withdrew it
			}
			var t Ticket
			if err := readJSON(claimed, &t); err != nil {
				writeEnd(q, n, End{Pilot: name, Node: node, Start: time.Now(), End: time.Now(), Exit: -1, Reason: ReasonError, Message: err.Error()})
				continue
			}
			var r *running
			var err error
			if reusable(t, self) {
				r, err = startInWorker(t, idle, logw, ended)
			} else {
				r, err = startJob(t, ended)
			}
			if err != nil {
				writeEnd(q, n, End{Pilot: name, Node: node, Start: time.Now(), End: time.Now(), Exit: -1, Reason: ReasonError, Message: err.Error()})
				continue
			}
			writeEnd2(q.runPath(n), Start{Pilot: name, Node: node, Start: r.start})
			jobs[n] = r
			lastBusy = time.Now()
		}
		if time.Since(lastBeat) >= c.Heartbeat {
			touch(q.alivePath(name))
			lastBeat = time.Now()
		}
		if len(jobs) == 0 && time.Since(lastBusy) >= c.Idle {
			fmt.Fprintf(logw, "gaffer pilot %s: idle for %v, exiting\n", name, c.Idle)
			stopIdle()
			return nil
		}
		select {
		case <-tick.C:
		case <-ended:
		case <-ctx.Done():
		}
	}
}

func writeEnd(q Queue, n string, e End) { writeEnd2(q.donePath(n), e) }

func writeEnd2(path string, v any) { _ = writeJSON(path+".tmp", path, v) }

func touch(path string) {
	now := time.Now()
	if err := os.Chtimes(path, now, now); errors.Is(err, os.ErrNotExist) {
		_ = os.WriteFile(path, nil, 0o644)
	}
}

// startJob starts a ticket's command in its folder, its output appended
// to its log, in a process group of its own.
func startJob(t Ticket, ended chan<- struct{}) (*running, error) {
	logPath := t.LogPath
	if logPath == "" {
		logPath = os.DevNull
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the job's log: %w", err)
	}
	cmd := exec.Command(t.Command[0], t.Command[1:]...)
	cmd.Dir = t.Dir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = os.Environ()
	for k, v := range t.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %q: %w", t.Command[0], err)
	}
	r := &running{t: t, cmd: cmd, log: f, start: time.Now(), done: make(chan jobExit, 1)}
	go func() {
		r.done <- processExit(cmd, cmd.Wait())
		select {
		case ended <- struct{}{}: // wake the loop: a slot is free
		default:
		}
	}()
	return r, nil
}

// startInWorker runs t in an idle folder worker of its environment, or
// in a new one.
func startInWorker(t Ticket, idle map[string][]*folderWorker, logw io.Writer, ended chan<- struct{}) (*running, error) {
	key := envKey(t.Env)
	var w *folderWorker
	if ws := idle[key]; len(ws) > 0 {
		w, idle[key] = ws[len(ws)-1], ws[:len(ws)-1]
	} else {
		var err error
		if w, err = startFolderWorker(t, logw); err != nil {
			return nil, err
		}
	}
	r := &running{t: t, cmd: w.cmd, w: w, log: io.NopCloser(nil), start: time.Now(), done: make(chan jobExit, 1)}
	if err := w.run(t, r.done, ended); err != nil {
		w.gone = true
		signalTree(w.cmd.Process, syscall.SIGKILL)
		go w.cmd.Wait()
		return nil, fmt.Errorf("handing the job to a folder worker: %w", err)
	}
	return r, nil
}

// stoppedCode is a worker's exit code for a job stopped by a signal.
const stoppedCode = 143

// endOf makes a job's End from how its process ended.
func endOf(r *running, ex jobExit, pilot, node string) End {
	e := End{Pilot: pilot, Node: node, Start: r.start, End: time.Now(), Reason: ReasonExit, Exit: ex.code, Signal: ex.signal}
	if ex.err != nil {
		e.Exit, e.Reason, e.Message = -1, ReasonError, fmt.Sprint(ex.err)
	}
	if r.reason != "" {
		e.Reason = r.reason
	}
	if r.w == nil {
		// The job's process group may hold what the job started.
		signalTree(r.cmd.Process, syscall.SIGKILL)
	}
	return e
}

// stopAll stops every job (the pilot itself is being stopped): SIGTERM,
// then SIGKILL after grace.
func stopAll(jobs map[string]*running, grace time.Duration) {
	for _, r := range jobs {
		signalTree(r.cmd.Process, syscall.SIGTERM)
	}
	deadline := time.After(grace)
	for n, r := range jobs {
		select {
		case <-r.done:
		case <-deadline:
			for _, r := range jobs {
				signalTree(r.cmd.Process, syscall.SIGKILL)
			}
			<-r.done
		}
		signalTree(r.cmd.Process, syscall.SIGKILL)
		r.log.Close()
		delete(jobs, n)
	}
}
