package gaffer

import (
	"encoding/binary"

	"errors"
	"fmt"
	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/jobstore"
	"os"
	"path/filepath"
	"sync"
)

// A job that runs in the leader's process can take the leader down with
// it (os.Exit, a crash in C code, running out of memory): no recover
// catches that, and a leader that resumed would run it again and die
// again, for ever. So every in-process attempt takes a slot in a small
// file in the work directory while its body runs, and the next leader
// reads what was in flight when the last one died (graph.leaderDied).
//
// The file is written through a shared memory mapping where there is one
// (inflight_unix.go): a store to memory, no system call, and the kernel
// keeps the page when the process dies. Elsewhere each slot is written
// with a system call. Neither is synced: what matters is the process's
// death, not the machine's.

const (
	inflightFile  = "inflight"
	inflightSlots = 4096 // attempts running at once, in-process, that are watched
	slotSize      = 24   // job, epoch, issue number
)

// inflight is the slot table of the attempts running in this process.
type inflight struct {
	mu   sync.Mutex
	file *os.File
	mem  []byte // the mapping, if any
	free []int
}

// readInflight returns the attempts that were in flight, in-process,
// when the last leader on workDir stopped.
func readInflight(workDir string) ([]attempt, error) {
	b, err := os.ReadFile(filepath.Join(workDir, inflightFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("gaffer: reading the jobs in flight: %w", err)
	}
	var out []attempt
	for off := 0; off+slotSize <= len(b); off += slotSize {
		s := b[off : off+slotSize]
		if id := binary.LittleEndian.Uint64(s); id != 0 {
			out = append(out, attempt{job: JobID(id), epoch: binary.LittleEndian.Uint64(s[8:]), seq: binary.LittleEndian.Uint64(s[16:])})
		}
	}
	return out, nil
}

// openInflight makes a fresh, empty slot table in workDir.
func openInflight(workDir string) (*inflight, error) {
	f, err := os.OpenFile(filepath.Join(workDir, inflightFile), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err == nil {
		err = f.Truncate(inflightSlots * slotSize)
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		return nil, fmt.Errorf("gaffer: the in-flight file: %w", err)
	}
	t := &inflight{file: f, free: make([]int, 0, inflightSlots)}
	for i := inflightSlots - 1; i >= 0; i-- {
		t.free = append(t.free, i)
	}
	t.mem = mapShared(f, inflightSlots*slotSize) // nil: write through the file
	return t, nil
}

// enter records that attempt a runs; it returns its slot, or -1 if none
// was free (the attempt is then not watched).
func (t *inflight) enter(a attempt) int {
	if t == nil {
		return -1
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.free) == 0 {
		return -1
	}
	i := t.free[len(t.free)-1]
	t.free = t.free[:len(t.free)-1]
	var s [slotSize]byte
	binary.LittleEndian.PutUint64(s[0:], uint64(a.job))
	binary.LittleEndian.PutUint64(s[8:], a.epoch)
	binary.LittleEndian.PutUint64(s[16:], a.seq)
	t.write(i, s[:])
	return i
}

// leave frees slot i.
func (t *inflight) leave(i int) {
	if i < 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.write(i, make([]byte, slotSize))
	t.free = append(t.free, i)
}

func (t *inflight) write(i int, s []byte) {
	if t.mem != nil {
		copy(t.mem[i*slotSize:], s)
		return
	}
	_, _ = t.file.WriteAt(s, int64(i*slotSize))
}

// close removes the table: nothing runs any more.
func (t *inflight) close() error {
	if t == nil {
		return nil
	}
	unmap(t.mem)
	name := t.file.Name()
	return errors.Join(t.file.Close(), os.Remove(name))
}

// takeLeaderDeaths charges the in-process attempts that were running
// when the last leader died (graph.leaderDied).
func (l *Leader) takeLeaderDeaths() error {
	running, err := readInflight(l.cfg.WorkDir)
	if err != nil || len(running) == 0 {
		return err
	}
	for _, j := range l.g.leaderDied(running, l.cfg.MaxLeaderDeaths) {
		l.log.Warn("job charged a try: it was running in the leader's process whenever the leader died", "job_id", j.id.String(), "job_kind", j.kind)
	}
	return nil
}

// leaderDied takes the in-process attempts that were running, in an
// earlier leader's process, when that leader died. Each job's count of
// such deaths in a row goes up; one that reaches max (0: never) is
// charged a failed attempt, retried if it has tries left. A job that ran
// in a worker process or on a cluster is never charged for its leader's
// death: it is not here. It returns the jobs charged.
func (g *graph) leaderDied(running []attempt, max int) (charged []*ljob) {
	for _, a := range running {
		j := g.jobs.get(a.job)
		if j == nil || j.state != jobstore.StatePending || a.epoch >= g.epoch {
			continue // it ended after all, or the slot is not an earlier leader's
		}
		x := j.ext()
		x.deaths++
		g.touch(j)
		if max <= 0 || int(x.deaths) < max {
			continue
		}
		msg := fmt.Sprintf("it was running in the leader's process each of the last %d times the leader died: it takes its leader down "+
			"(os.Exit, a crash outside Go, running out of memory); run it in a worker process to see its own error", x.deaths)
		rec := g.newRecord(j, nil)
		rec.Epoch, rec.Seq, rec.Reason, rec.Error = a.epoch, a.seq, batchsystem.Lost.String(), msg
		g.plan.attempts = append(g.plan.attempts, rec)
		g.plan.failed++
		x.deaths = 0
		g.attemptFailed(j, msg, "", false)
		charged = append(charged, j)
	}
	return charged
}
