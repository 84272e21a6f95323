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
	cmd      *exec.Cmd
	log      io.Closer
	start    time.Time
	done     chan error // the Wait result
	termAt   time.Time  // when SIGTERM was sent; zero before
	reason   string     // why the pilot stopped it, if it did
	killSent bool
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
	// A job's end wakes the loop at once, so that its slot takes the next
	// job without waiting for the tick: with the tick alone, a slot ran
	// at most one job per Poll.
	ended := make(chan struct{}, 1)
	shapeDir := q.shapeDir(c.Owner, c.Shape)

	for {
		// Reap.
		for n, r := range jobs {
			select {
			case err := <-r.done:
				end := endOf(r, err, name, node)
				r.log.Close()
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
					fmt.Fprintf(r.cmd.Stdout, "gaffer pilot %s: *** JOB %s (gaffer job %s) CANCELLED AT %s DUE TO TIME LIMIT (%v) ***\n",
						name, n, r.t.JobID, now.Format("2006-01-02T15:04:05"), r.t.Walltime)
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
			r, err := startJob(t, ended)
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
	r := &running{t: t, cmd: cmd, log: f, start: time.Now(), done: make(chan error, 1)}
	go func() {
		r.done <- cmd.Wait()
		select {
		case ended <- struct{}{}: // wake the loop: a slot is free
		default:
		}
	}()
	return r, nil
}

// endOf makes a job's End from how its process ended.
func endOf(r *running, err error, pilot, node string) End {
	e := End{Pilot: pilot, Node: node, Start: r.start, End: time.Now(), Reason: ReasonExit}
	st := r.cmd.ProcessState
	switch {
	case st == nil:
		e.Exit, e.Reason, e.Message = -1, ReasonError, fmt.Sprint(err)
	default:
		e.Exit = st.ExitCode()
		e.Signal = exitSignal(st)
	}
	if r.reason != "" {
		e.Reason = r.reason
	}
	// The job's process group may hold what the job started.
	signalTree(r.cmd.Process, syscall.SIGKILL)
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
