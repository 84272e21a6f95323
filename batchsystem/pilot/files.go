package pilot

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Arg is the first argument that makes a program a pilot: a program that
// calls gaffer.ServeWorker serves a queue when started as
// `prog __gaffer_pilot__ <root> <pilot name>`.
const Arg = "__gaffer_pilot__"

// Ticket is one job in the queue: everything a pilot needs to run it.
type Ticket struct {
	Name     string            `json:"name"` // unique in the root; also the file's name
	Owner    string            `json:"owner"`
	Shape    string            `json:"shape"`
	JobID    string            `json:"job_id,omitempty"` // gaffer's job ID, for messages
	Command  []string          `json:"command"`
	Env      map[string]string `json:"env,omitempty"`
	Dir      string            `json:"dir,omitempty"`
	LogPath  string            `json:"log_path,omitempty"`
	Walltime time.Duration     `json:"walltime,omitempty"` // 0: no limit
}

// Start says that a pilot began running a ticket.
type Start struct {
	Pilot string    `json:"pilot"`
	Node  string    `json:"node"`
	Start time.Time `json:"start"`
}

// How a job run by a pilot ended (End.Reason).
const (
	ReasonExit    = "exit"    // the job's process exited on its own (see Exit, Signal)
	ReasonKilled  = "killed"  // a kill flag stopped it
	ReasonTimeout = "timeout" // it outlived its Walltime
	ReasonError   = "error"   // the pilot could not start it
)

// End is a job's own record, written by the pilot once the job ended.
type End struct {
	Pilot   string    `json:"pilot"`
	Node    string    `json:"node"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Exit    int       `json:"exit"`             // -1 when ended by a signal
	Signal  int       `json:"signal,omitempty"` // the signal that ended it, if one did
	Reason  string    `json:"reason"`
	Message string    `json:"message,omitempty"`
}

// Config describes one pilot. The adapter writes it before submitting the
// pilot; the pilot reads it when it starts.
type Config struct {
	Name      string        `json:"name"`
	Owner     string        `json:"owner"` // the pilot serves only this owner's queue
	Shape     string        `json:"shape"`
	Slots     int           `json:"slots"`      // jobs at once
	Idle      time.Duration `json:"idle"`       // exit after this long with nothing to run
	Poll      time.Duration `json:"poll"`       // how often to look for tickets and kill flags
	Heartbeat time.Duration `json:"heartbeat"`  // how often to touch the .alive file
	KillGrace time.Duration `json:"kill_grace"` // SIGTERM to SIGKILL
	// Backing is the scheduler's ID of the pilot's batch job, added by the
	// adapter once the scheduler accepted it: a later adapter adopts the
	// pilot by it.
	Backing string `json:"backing,omitempty"`
}

func (c *Config) defaults() {
	if c.Slots <= 0 {
		c.Slots = 1
	}
	if c.Idle <= 0 {
		c.Idle = 30 * time.Second
	}
	if c.Poll <= 0 {
		c.Poll = 50 * time.Millisecond
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 5 * time.Second
	}
	if c.KillGrace <= 0 {
		c.KillGrace = 5 * time.Second
	}
}

// Queue is the adapter's side of a queue root.
type Queue struct{ Root string }

func (q Queue) shapeDir(owner, shape string) string {
	return filepath.Join(q.Root, "queue", owner, shape)
}
func (q Queue) claimedDir(pilot string) string { return filepath.Join(q.Root, "claimed", pilot) }
func (q Queue) runPath(name string) string     { return filepath.Join(q.Root, "run", name+".json") }
func (q Queue) donePath(name string) string    { return filepath.Join(q.Root, "done", name+".json") }
func (q Queue) killPath(name string) string    { return filepath.Join(q.Root, "kill", name) }
func (q Queue) pilotPath(name string) string   { return filepath.Join(q.Root, "pilots", name+".json") }
func (q Queue) alivePath(name string) string   { return filepath.Join(q.Root, "pilots", name+".alive") }

// Init makes the folders that are not per owner, shape or pilot.
func (q Queue) Init() error {
	for _, d := range []string{"queue", "claimed", "run", "done", "kill", "pilots"} {
		if err := os.MkdirAll(filepath.Join(q.Root, d), 0o755); err != nil {
			return fmt.Errorf("pilot: %w", err)
		}
	}
	return nil
}

// Put queues a ticket.
func (q Queue) Put(t Ticket) error {
	if !safeName(t.Name) || !safeName(t.Owner) || !safeName(t.Shape) {
		return fmt.Errorf("pilot: ticket %q (owner %q, shape %q): names must be [A-Za-z0-9_.-]", t.Name, t.Owner, t.Shape)
	}
	if len(t.Command) == 0 {
		return fmt.Errorf("pilot: ticket %s (job %s) has no command", t.Name, t.JobID)
	}
	dir := q.shapeDir(t.Owner, t.Shape)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("pilot: %w", err)
	}
	// The temporary file is in the root's queue folder, not the shape's,
	// so that a pilot listing the shape never sees it.
	return writeJSON(filepath.Join(q.Root, "queue", t.Name+".json"), filepath.Join(dir, t.Name+".json"), t)
}

// Withdraw takes a queued ticket back before any pilot claims it. It
// reports false when the ticket is no longer queued (a pilot has it).
func (q Queue) Withdraw(owner, shape, name string) (bool, error) {
	from := filepath.Join(q.shapeDir(owner, shape), name+".json")
	to := filepath.Join(q.Root, "queue", name+".withdrawn")
	err := os.Rename(from, to)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("pilot: withdrawing %s: %w", name, err)
	}
	_ = os.Remove(to)
	return true, nil
}

// Kill asks whichever pilot runs the ticket to kill that job only.
func (q Queue) Kill(name string) error {
	if err := os.WriteFile(q.killPath(name), nil, 0o644); err != nil {
		return fmt.Errorf("pilot: kill flag for %s: %w", name, err)
	}
	return nil
}

// Ended lists the tickets with an End record.
func (q Queue) Ended() ([]string, error) { return listJSON(filepath.Join(q.Root, "done")) }

// Started lists the tickets with a Start record (ended ones included,
// until Forget).
func (q Queue) Started() ([]string, error) { return listJSON(filepath.Join(q.Root, "run")) }

// ReadEnd reads a ticket's End record.
func (q Queue) ReadEnd(name string) (End, error) {
	var e End
	return e, readJSON(q.donePath(name), &e)
}

// ReadStart reads a ticket's Start record.
func (q Queue) ReadStart(name string) (Start, error) {
	var s Start
	return s, readJSON(q.runPath(name), &s)
}

// Forget removes every file of an ended (or lost) ticket.
func (q Queue) Forget(name, pilot string) {
	for _, p := range []string{q.donePath(name), q.runPath(name), q.killPath(name)} {
		_ = os.Remove(p)
	}
	if pilot != "" {
		_ = os.Remove(filepath.Join(q.claimedDir(pilot), name+".json"))
	}
}

// Where tells what became of a ticket: "queued", "claimed" (with the
// pilot), "ended" (with the pilot), or "" when no file names it.
func (q Queue) Where(owner, shape, name string) (where, pilot string, err error) {
	if e, err := q.ReadEnd(name); err == nil {
		return "ended", e.Pilot, nil
	}
	if _, err := os.Stat(filepath.Join(q.shapeDir(owner, shape), name+".json")); err == nil {
		return "queued", "", nil
	}
	pilots, err := os.ReadDir(filepath.Join(q.Root, "claimed"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", "", fmt.Errorf("pilot: %w", err)
	}
	for _, p := range pilots {
		if _, err := os.Stat(filepath.Join(q.claimedDir(p.Name()), name+".json")); err == nil {
			return "claimed", p.Name(), nil
		}
	}
	return "", "", nil
}

// Claimed lists the tickets a pilot claimed and whose files were not yet
// forgotten.
func (q Queue) Claimed(pilot string) ([]string, error) { return listJSON(q.claimedDir(pilot)) }

// WritePilot records a pilot's configuration.
func (q Queue) WritePilot(c Config) error {
	if !safeName(c.Name) || !safeName(c.Owner) || !safeName(c.Shape) {
		return fmt.Errorf("pilot: pilot %q (owner %q, shape %q): names must be [A-Za-z0-9_.-]", c.Name, c.Owner, c.Shape)
	}
	return writeJSON(q.pilotPath(c.Name)+".tmp", q.pilotPath(c.Name), c)
}

// Pilots reads every pilot's configuration.
func (q Queue) Pilots() ([]Config, error) {
	names, err := listJSON(filepath.Join(q.Root, "pilots"))
	if err != nil {
		return nil, err
	}
	var res []Config
	for _, n := range names {
		var c Config
		if err := readJSON(q.pilotPath(n), &c); err == nil {
			res = append(res, c)
		}
	}
	return res, nil
}

// RemovePilot removes the files of a pilot that ended, once none of its
// tickets needs them.
func (q Queue) RemovePilot(name string) {
	_ = os.Remove(q.pilotPath(name))
	_ = os.Remove(q.alivePath(name))
	_ = os.Remove(q.claimedDir(name)) // only if empty
}

// Heartbeat returns when the pilot last said it was alive.
func (q Queue) Heartbeat(name string) (time.Time, bool) {
	st, err := os.Stat(q.alivePath(name))
	if err != nil {
		return time.Time{}, false
	}
	return st.ModTime(), true
}

func safeName(s string) bool {
	if s == "" || s == "." || s == ".." {
		return false
	}
	for _, c := range s {
		ok := c == '_' || c == '-' || c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !ok {
			return false
		}
	}
	return true
}

func listJSON(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pilot: %w", err)
	}
	res := make([]string, 0, len(entries))
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".json"); ok && !strings.Contains(n, ".tmp") {
			res = append(res, n)
		}
	}
	return res, nil
}

var tmpSeq atomic.Int64

// writeJSON writes v to tmp and renames it to path.
func writeJSON(tmp, path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("pilot: %w", err)
	}
	tmp += ".tmp" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(tmpSeq.Add(1), 10)
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("pilot: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("pilot: %w", err)
	}
	return nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("pilot: %s: %w", path, err)
	}
	return nil
}
