package slurm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/batchsystem/pilot"
)

// Grouping: small jobs share pilots instead of costing an sbatch each.
// A pilot is one Slurm job that runs the program in pilot mode
// (JobSpec.PilotCommand); it pulls the jobs of one shape (the same
// requirements) from a queue folder under the work directory and runs up
// to GroupOptions.Slots of them at a time (package batchsystem/pilot).
// This file is the adapter's side: which jobs are grouped, how many
// pilots each shape gets, and turning the pilots' per-job records into
// reports. Pilots themselves are ordinary Slurm jobs to the poller
// (job.pilot is set), never reported to the leader.

// GroupOptions configure grouping. The zero value groups every job that
// can be grouped.
type GroupOptions struct {
	// Off gives every job a Slurm job of its own, as before grouping.
	Off bool
	// SoloKinds are job kinds (registered type names) that always get a
	// Slurm job of their own: long jobs, or jobs whose Slurm accounting
	// matters.
	SoloKinds []string
	// MaxCores: a job asking for more cores than this gets a Slurm job of
	// its own (default 1). Big jobs gain nothing from sharing a pilot,
	// and a pilot holding Slots of them would be hard to place.
	MaxCores float64
	// Slots is how many jobs a pilot runs at once (default 8). A pilot
	// asks Slurm for Slots times the shape's cores, memory and disk.
	Slots int
	// MaxPilots bounds the pilots of one shape at once (default 4).
	MaxPilots int
	// Idle is how long a pilot with nothing to run waits before it exits
	// (default 30 s). The leader also releases pilots at once when its
	// workflow ends (batchsystem.Releaser).
	Idle time.Duration
	// Poll is how often pilots look for new jobs and kill flags, and the
	// adapter reads the pilots' records (default 100 ms). These are reads
	// of the shared work directory, not Slurm queries: PollInterval still
	// bounds squeue and sacct.
	Poll time.Duration
	// KillGrace is the time between SIGTERM and SIGKILL when a pilot
	// stops one job, for a kill or its Walltime (default 5 s, Slurm's
	// usual KillWait).
	KillGrace time.Duration
	// Stale: a pilot Slurm shows running whose heartbeat is older than
	// this is cancelled, and its jobs reported lost (default 2 minutes).
	Stale time.Duration
}

func (g GroupOptions) withDefaults() GroupOptions {
	if g.MaxCores <= 0 {
		g.MaxCores = 1
	}
	if g.Slots <= 0 {
		g.Slots = 8
	}
	if g.MaxPilots <= 0 {
		g.MaxPilots = 4
	}
	if g.Idle <= 0 {
		g.Idle = 30 * time.Second
	}
	if g.Poll <= 0 {
		g.Poll = 100 * time.Millisecond
	}
	if g.KillGrace <= 0 {
		g.KillGrace = 5 * time.Second
	}
	if g.Stale <= 0 {
		g.Stale = 2 * time.Minute
	}
	return g
}

// heartbeat is how often pilots touch their .alive file.
const heartbeat = 5 * time.Second

// member is a grouped job: a ticket in a pilot queue.
type member struct {
	id      batchsystem.ID
	root    string // the queue's root
	owner   string
	ticket  string
	shape   string
	jobID   string
	adopted bool

	pilot   string // the pilot that runs it, once known
	started bool
	start   time.Time
	node    string

	finished *batchsystem.FinishedJob
	killed   bool
	stopped  chan struct{} // for killed members: closed once it stopped
}

func (m *member) backing() string {
	return "pilot/" + m.owner + "/" + m.shape + "/" + m.ticket
}

// pilotRec is a pilot this adapter submitted or adopted.
type pilotRec struct {
	name  string
	root  string
	owner string
	shape string
	job   *job // its Slurm job, watched by the poller; nil until submitted
	ended bool // its Slurm job ended (or vanished)
	gone  bool // handled: its lost jobs reported, files removed
}

// shapeState is one shape of one queue root.
type shapeState struct {
	key         string
	root        string
	outstanding int                 // this adapter's own members not ended
	template    batchsystem.JobSpec // a member's spec, to size and start pilots
	submitting  int                 // pilots being submitted
	failed      error               // a pilot could not be submitted: the shape's jobs go solo
}

// grouped tells whether spec shares a pilot.
func (b *BatchSystem) grouped(spec batchsystem.JobSpec) bool {
	g := b.opts.Group
	if g.Off || len(spec.PilotCommand) == 0 || spec.WorkDir == "" || len(spec.Command) == 0 {
		return false
	}
	if slices.Contains(g.SoloKinds, spec.Kind) || spec.Requirements.Cores > g.MaxCores || len(spec.Requirements.Accelerators) > 0 {
		return false
	}
	return true
}

// shapeKey names a shape in file names: jobs of one shape share pilots.
func (b *BatchSystem) shapeKey(r batchsystem.Requirements) string {
	disk := int64(0)
	if !b.opts.IgnoreDisk {
		disk = ceilDiv(r.Disk, mib)
	}
	return fmt.Sprintf("c%d-m%d-d%d-t%d", int64(math.Ceil(r.Cores*1000)), ceilDiv(r.Memory, mib), disk, int64(math.Ceil(r.Walltime.Seconds())))
}

func queueRoot(workDir string) string { return filepath.Join(workDir, "pilot") }

func newOwner() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "o" + hex.EncodeToString(b[:])
}

// issueGrouped queues spec for a pilot. It runs no Slurm command: the
// group loop submits pilots.
func (b *BatchSystem) issueGrouped(spec batchsystem.JobSpec) (batchsystem.ID, error) {
	if _, err := b.sbatchArgs(spec); err != nil {
		return 0, err // the checks of a solo job hold for a grouped one
	}
	root := queueRoot(spec.WorkDir)
	if err := b.initRoot(root); err != nil {
		return 0, err
	}
	shape := b.shapeKey(spec.Requirements)
	b.mu.Lock()
	if b.shut {
		b.mu.Unlock()
		return 0, batchsystem.ErrShutdown
	}
	if st := b.shapes[root+"|"+shape]; st != nil && st.failed != nil {
		b.mu.Unlock()
		return 0, errSolo
	}
	b.ticketSeq++
	ticket := fmt.Sprintf("%s-%09d", b.owner, b.ticketSeq)
	b.mu.Unlock()
	t := pilot.Ticket{
		Name: ticket, Owner: b.owner, Shape: shape, JobID: spec.JobID,
		Command: spec.Command, Env: mergeEnv(b.opts.Env, spec.Env), Dir: cmp(spec.Dir, b.opts.WorkDir), LogPath: spec.LogPath,
		Walltime: spec.Requirements.Walltime,
	}
	if err := (pilot.Queue{Root: root}).Put(t); err != nil {
		return 0, fmt.Errorf("slurm: queueing job %s for a pilot: %w", spec.JobID, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.shut {
		_, _ = (pilot.Queue{Root: root}).Withdraw(b.owner, shape, ticket)
		return 0, batchsystem.ErrShutdown
	}
	id := b.nextID
	b.nextID++
	m := &member{id: id, root: root, owner: b.owner, ticket: ticket, shape: shape, jobID: spec.JobID}
	b.addMember(m)
	st := b.shape(root, shape, spec)
	st.outstanding++
	b.kickGroup()
	return id, nil
}

// errSolo makes Issue submit a job on its own.
var errSolo = errors.New("slurm: submit on its own")

func mergeEnv(base, env map[string]string) map[string]string {
	if len(base) == 0 {
		return env
	}
	m := map[string]string{}
	for k, v := range base {
		m[k] = v
	}
	for k, v := range env {
		m[k] = v
	}
	return m
}

// shape returns the state of a shape; b.mu must be held.
func (b *BatchSystem) shape(root, key string, spec batchsystem.JobSpec) *shapeState {
	st := b.shapes[root+"|"+key]
	if st == nil {
		st = &shapeState{key: key, root: root, template: spec}
		b.shapes[root+"|"+key] = st
	}
	return st
}

func (b *BatchSystem) addMember(m *member) {
	b.members[m.id] = m
	b.byTicket[m.ticket] = m
}

func (b *BatchSystem) forgetMember(m *member) {
	delete(b.members, m.id)
	if b.byTicket[m.ticket] == m {
		delete(b.byTicket, m.ticket)
	}
}

func (b *BatchSystem) kickGroup() {
	select {
	case b.groupWake <- struct{}{}:
	default:
	}
}

// initRoot makes a queue root's folders and, the first time this adapter
// sees the root, adopts the pilots an earlier leader left there, so that
// it watches them (their jobs are reported lost if they die) and can
// release them.
func (b *BatchSystem) initRoot(root string) error {
	b.mu.Lock()
	seen := b.roots[root]
	b.mu.Unlock()
	if seen {
		return nil
	}
	q := pilot.Queue{Root: root}
	if err := q.Init(); err != nil {
		return fmt.Errorf("slurm: %w", err)
	}
	cfgs, err := q.Pilots()
	if err != nil {
		return fmt.Errorf("slurm: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.roots[root] {
		return nil
	}
	b.roots[root] = true
	for _, c := range cfgs {
		if _, ok := b.pilots[c.Name]; ok || c.Owner == b.owner {
			continue
		}
		p := &pilotRec{name: c.Name, root: root, owner: c.Owner, shape: c.Shape}
		b.pilots[c.Name] = p
		if !validSlurmID(c.Backing) || b.bySlurm[c.Backing] != 0 {
			p.ended = true // never submitted, or its leader died before it knew the ID
			continue
		}
		spec := pilotSpec(c.Name, batchsystem.JobSpec{})
		j := b.trackLocked(spec, c.Backing, time.Now().Add(-b.opts.SacctLookback), true)
		j.pilot = c.Name
		p.job = j
		b.log.Debug("slurm: adopted pilot", "pilot", c.Name, "slurm_id", c.Backing)
	}
	return nil
}

// pilotSpec is the JobSpec a pilot is submitted with: the shape's
// requirements times slots, the member's pilot command.
func pilotSpec(name string, tmpl batchsystem.JobSpec) batchsystem.JobSpec {
	return batchsystem.JobSpec{JobID: name, Name: name, Kind: "pilot", Requirements: tmpl.Requirements, Command: tmpl.PilotCommand, Dir: tmpl.WorkDir}
}

// adoptGrouped adopts a member an earlier leader queued: backing is
// "pilot/<owner>/<shape>/<ticket>".
func (b *BatchSystem) adoptGrouped(spec batchsystem.JobSpec, backing string) (batchsystem.ID, error) {
	parts := strings.Split(backing, "/")
	if len(parts) != 4 || spec.WorkDir == "" {
		return 0, fmt.Errorf("%w: job %s: backing %q is not a pilot ticket, or the spec has no WorkDir", ErrBadSpec, spec.JobID, backing)
	}
	owner, shape, ticket := parts[1], parts[2], parts[3]
	root := queueRoot(spec.WorkDir)
	if err := b.initRoot(root); err != nil {
		return 0, err
	}
	q := pilot.Queue{Root: root}
	where, pl, err := q.Where(owner, shape, ticket)
	if err != nil {
		return 0, fmt.Errorf("slurm: adopting job %s: %w", spec.JobID, err)
	}
	if where == "queued" {
		// No pilot of the dead leader took it: take it back, and let the
		// leader issue it again into this adapter's own queue.
		ok, err := q.Withdraw(owner, shape, ticket)
		if err != nil {
			return 0, fmt.Errorf("slurm: adopting job %s: %w", spec.JobID, err)
		}
		if ok {
			return 0, fmt.Errorf("slurm: job %s was still queued for a pilot of the earlier leader; issue it again", spec.JobID)
		}
		if where, pl, err = q.Where(owner, shape, ticket); err != nil {
			return 0, fmt.Errorf("slurm: adopting job %s: %w", spec.JobID, err)
		}
	}
	if where == "" {
		return 0, fmt.Errorf("slurm: job %s: no pilot queue file names ticket %s", spec.JobID, ticket)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.shut {
		return 0, batchsystem.ErrShutdown
	}
	if _, ok := b.byTicket[ticket]; ok {
		return 0, fmt.Errorf("%w: %s", ErrAlreadyTracked, backing)
	}
	id := b.nextID
	b.nextID++
	m := &member{id: id, root: root, owner: owner, ticket: ticket, shape: shape, jobID: spec.JobID, adopted: true, pilot: pl}
	b.addMember(m)
	if p := b.pilots[pl]; where == "claimed" && (p == nil || p.gone) {
		// Its pilot is gone and wrote no End: the job is lost.
		b.finishMember(m, b.lostReport(m, "its pilot "+pl+" is gone"))
	}
	b.kickGroup()
	return id, nil
}

// groupLoop reads the pilots' records and keeps pilots submitted, every
// GroupOptions.Poll, while there is anything grouped to watch.
func (b *BatchSystem) groupLoop() {
	defer close(b.groupDone)
	t := time.NewTicker(b.opts.Group.Poll)
	defer t.Stop()
	for {
		select {
		case <-b.stopPoll:
			return
		case <-t.C:
		case <-b.groupWake:
		}
		b.groupOnce(b.stopCtx)
	}
}

// groupOnce is one pass: submit pilots where needed, take starts and
// ends, report the jobs of pilots that died as lost.
func (b *BatchSystem) groupOnce(ctx context.Context) {
	b.mu.Lock()
	if len(b.members) == 0 && len(b.pilots) == 0 {
		b.mu.Unlock()
		return
	}
	roots := map[string]bool{}
	for _, m := range b.members {
		roots[m.root] = true
	}
	var dead []*pilotRec
	for _, p := range b.pilots {
		roots[p.root] = true
		if p.ended && !p.gone {
			dead = append(dead, p)
		}
	}
	b.mu.Unlock()

	for root := range roots {
		b.readRecords(root)
	}
	// After the records: a pilot writes a job's End before it exits, so
	// a job of a dead pilot with no End by now will never have one.
	for _, p := range dead {
		b.buryPilot(p)
	}
	b.checkHeartbeats()
	b.submitPilots(ctx)
}

// readRecords takes the Start and End records of a root.
func (b *BatchSystem) readRecords(root string) {
	q := pilot.Queue{Root: root}
	started, err := q.Started()
	if err != nil {
		b.log.Warn("slurm: reading pilot start records", "err", err)
	}
	ended, err := q.Ended()
	if err != nil {
		b.log.Warn("slurm: reading pilot end records", "err", err)
	}
	b.mu.Lock()
	var newStarts []*member
	for _, n := range started {
		if m := b.byTicket[n]; m != nil && !m.started && m.root == root {
			newStarts = append(newStarts, m)
		}
	}
	var newEnds []*member
	for _, n := range ended {
		if m := b.byTicket[n]; m != nil && m.finished == nil && m.root == root {
			newEnds = append(newEnds, m)
		}
	}
	b.mu.Unlock()
	type startRec struct {
		m *member
		s pilot.Start
	}
	var starts []startRec
	for _, m := range newStarts {
		if s, err := q.ReadStart(m.ticket); err == nil {
			starts = append(starts, startRec{m, s})
		}
	}
	type endRec struct {
		m *member
		e pilot.End
	}
	var ends []endRec
	for _, m := range newEnds {
		if e, err := q.ReadEnd(m.ticket); err == nil {
			ends = append(ends, endRec{m, e})
		}
	}
	b.mu.Lock()
	for _, s := range starts {
		s.m.started, s.m.start, s.m.node, s.m.pilot = true, s.s.Start, s.s.Node, s.s.Pilot
	}
	added := false
	var forget []*member
	for _, e := range ends {
		m := e.m
		if b.byTicket[m.ticket] != m || m.finished != nil {
			continue
		}
		m.pilot = e.e.Pilot
		if m.killed {
			forget = append(forget, m)
		}
		if b.finishMember(m, b.endReport(m, e.e)) {
			added = true
		}
	}
	if added {
		b.signalDone()
	}
	b.mu.Unlock()
	// A reported job's files go once WaitFinished has handed it over
	// (WaitFinished): until then a later leader can still adopt it.
	for _, m := range forget {
		q.Forget(m.ticket, m.pilot)
	}
}

// endReport turns a pilot's End record into a report, with the state
// words Slurm would use for a job of its own.
func (b *BatchSystem) endReport(m *member, e pilot.End) batchsystem.FinishedJob {
	f := batchsystem.FinishedJob{ID: m.id, BackingID: m.backing(), Node: e.Node, ExitCode: e.Exit}
	if !e.Start.IsZero() && e.End.After(e.Start) {
		f.WallTime = e.End.Sub(e.Start)
	}
	state := "COMPLETED"
	switch {
	case e.Signal > 0:
		f.ExitCode = 128 + e.Signal
	case e.Exit < 0:
		f.ExitCode = batchsystem.ExitUnavailable
	}
	switch {
	case e.Reason == pilot.ReasonTimeout:
		state, f.Reason = "TIMEOUT", batchsystem.Killed
	case e.Reason == pilot.ReasonKilled:
		state, f.Reason = "CANCELLED", batchsystem.Killed
	case e.Reason == pilot.ReasonError:
		state, f.Reason = "FAILED", batchsystem.Error
	case f.ExitCode == 0:
		f.Reason = batchsystem.Finished
	default:
		state, f.Reason = "FAILED", batchsystem.Failed
	}
	if state != "COMPLETED" && f.ExitCode == 0 {
		f.ExitCode = batchsystem.ExitUnavailable
	}
	f.Message = fmt.Sprintf("job %s %s in pilot %s%s", m.ticket, state, e.Pilot, b.pilotSlurm(e.Pilot))
	if e.Message != "" {
		f.Message += ": " + e.Message
	}
	return f
}

// pilotSlurm is " (Slurm job N)" for a known pilot; b.mu must be held.
func (b *BatchSystem) pilotSlurm(name string) string {
	if p := b.pilots[name]; p != nil && p.job != nil {
		return " (Slurm job " + p.job.slurmID + ")"
	}
	return ""
}

func (b *BatchSystem) lostReport(m *member, why string) batchsystem.FinishedJob {
	f := batchsystem.FinishedJob{ID: m.id, BackingID: m.backing(), ExitCode: batchsystem.ExitUnavailable, Reason: batchsystem.Lost, Node: m.node,
		Message: fmt.Sprintf("job %s lost: %s%s", m.ticket, why, b.pilotSlurm(m.pilot))}
	if m.started {
		f.WallTime = time.Since(m.start)
	}
	return f
}

// finishMember records a member's end; b.mu must be held. It reports
// whether the member was queued for WaitFinished.
func (b *BatchSystem) finishMember(m *member, f batchsystem.FinishedJob) bool {
	if m.killed {
		if m.stopped != nil {
			close(m.stopped)
			m.stopped = nil
		}
		b.forgetMember(m)
		return false
	}
	if !m.adopted {
		if st := b.shapes[m.root+"|"+m.shape]; st != nil {
			st.outstanding--
		}
	}
	m.finished = &f
	b.done = append(b.done, m.id)
	return true
}

// pilotEnded is called by the poller (b.mu held) when a pilot's Slurm
// job ended: the group loop reports its unfinished jobs lost.
func (b *BatchSystem) pilotEnded(j *job) {
	if p := b.pilots[j.pilot]; p != nil {
		p.ended = true
		b.kickGroup()
	}
	b.forget(j)
}

// buryPilot reports the jobs a dead pilot claimed and never ended as
// lost, and removes its files.
func (b *BatchSystem) buryPilot(p *pilotRec) {
	q := pilot.Queue{Root: p.root}
	claimed, err := q.Claimed(p.name)
	if err != nil {
		b.log.Warn("slurm: reading a dead pilot's jobs", "pilot", p.name, "err", err)
		return
	}
	b.mu.Lock()
	added := false
	var forget []string
	for _, n := range claimed {
		m := b.byTicket[n]
		if m == nil || m.finished != nil {
			continue
		}
		m.pilot = p.name
		forget = append(forget, n)
		if b.finishMember(m, b.lostReport(m, "its pilot "+p.name+" ended before it")) {
			added = true
		}
	}
	// Members adopted as claimed by this pilot whose claim file is gone.
	for _, m := range b.members {
		if m.pilot == p.name && m.finished == nil && !slices.Contains(claimed, m.ticket) {
			if b.finishMember(m, b.lostReport(m, "its pilot "+p.name+" ended before it")) {
				added = true
			}
		}
	}
	p.gone = true
	delete(b.pilots, p.name)
	if added {
		b.signalDone()
	}
	b.mu.Unlock()
	for _, n := range forget {
		q.Forget(n, p.name)
	}
	if len(claimed) == len(forget) {
		q.RemovePilot(p.name)
	}
	b.kickGroup()
}

// checkHeartbeats cancels running pilots that stopped beating: hung, or
// on a node Slurm has not noticed is gone.
func (b *BatchSystem) checkHeartbeats() {
	b.mu.Lock()
	var suspects []*pilotRec
	for _, p := range b.pilots {
		if !p.ended && p.job != nil && p.job.phase == phaseRunning && !p.job.killed && time.Since(p.job.seenAt)+p.job.elapsed > b.opts.Group.Stale {
			suspects = append(suspects, p)
		}
	}
	b.mu.Unlock()
	for _, p := range suspects {
		last, ok := (pilot.Queue{Root: p.root}).Heartbeat(p.name)
		if ok && time.Since(last) < b.opts.Group.Stale {
			continue
		}
		b.log.Warn("slurm: pilot stopped beating; cancelling it", "pilot", p.name, "slurm_id", p.job.slurmID, "last", last)
		b.cancelQuietly(p.job.slurmID)
	}
}

// submitPilots submits pilots for shapes whose outstanding jobs need more.
func (b *BatchSystem) submitPilots(ctx context.Context) {
	g := b.opts.Group
	type need struct {
		st *shapeState
		n  int
	}
	var needs []need
	b.mu.Lock()
	if b.shut {
		b.mu.Unlock()
		return
	}
	live := map[string]int{}
	for _, p := range b.pilots {
		if !p.ended && p.owner == b.owner {
			live[p.root+"|"+p.shape]++
		}
	}
	for k, st := range b.shapes {
		if st.outstanding <= 0 || st.failed != nil {
			continue
		}
		want := min(g.MaxPilots, (st.outstanding+g.Slots-1)/g.Slots)
		if n := want - live[k] - st.submitting; n > 0 {
			st.submitting += n
			needs = append(needs, need{st, n})
		}
	}
	b.mu.Unlock()
	for _, nd := range needs {
		for range nd.n {
			err := b.submitPilot(ctx, nd.st)
			b.mu.Lock()
			nd.st.submitting--
			if err != nil {
				b.log.Warn("slurm: submitting a pilot", "shape", nd.st.key, "err", err)
				if errors.Is(err, batchsystem.ErrInsufficientResources) {
					// The shape times Slots does not fit: its jobs fail
					// here with the reason, and later ones go solo.
					nd.st.failed = err
					b.failShape(nd.st, err)
				}
			}
			b.mu.Unlock()
			if err != nil {
				break
			}
		}
	}
}

// failShape reports the queued jobs of a shape whose pilot cannot be
// submitted; b.mu must be held.
func (b *BatchSystem) failShape(st *shapeState, err error) {
	q := pilot.Queue{Root: st.root}
	added := false
	for _, m := range b.members {
		if m.root != st.root || m.shape != st.key || m.finished != nil || m.started || m.adopted {
			continue
		}
		if ok, _ := q.Withdraw(m.owner, m.shape, m.ticket); !ok {
			continue
		}
		if b.finishMember(m, batchsystem.FinishedJob{ID: m.id, BackingID: m.backing(), ExitCode: batchsystem.ExitUnavailable, Reason: batchsystem.Error,
			Message: fmt.Sprintf("no pilot for job %s: %v", m.ticket, err)}) {
			added = true
		}
	}
	if added {
		b.signalDone()
	}
}

// submitPilot writes a pilot's configuration and submits it.
func (b *BatchSystem) submitPilot(ctx context.Context, st *shapeState) error {
	g := b.opts.Group
	b.mu.Lock()
	b.pilotSeq++
	name := fmt.Sprintf("%s-p%d", b.owner, b.pilotSeq)
	b.mu.Unlock()
	tmpl := st.template
	r := tmpl.Requirements
	r.Cores *= float64(g.Slots)
	r.Memory *= int64(g.Slots)
	r.Disk *= int64(g.Slots)
	r.Walltime = 0 // the pilot enforces each job's own
	tmpl.Requirements = r
	spec := pilotSpec(name, tmpl)
	spec.Command = append(slices.Clip(tmpl.PilotCommand), st.root, name)
	spec.LogPath = filepath.Join(st.root, "pilots", name+".log")
	q := pilot.Queue{Root: st.root}
	cfg := pilot.Config{Name: name, Owner: b.owner, Shape: st.key, Slots: g.Slots, Idle: g.Idle, Poll: g.Poll / 2,
		Heartbeat: heartbeat, KillGrace: g.KillGrace}
	if err := q.WritePilot(cfg); err != nil {
		return err
	}
	since := time.Now()
	slurmID, err := b.submit(ctx, spec)
	if err != nil {
		q.RemovePilot(name)
		return err
	}
	cfg.Backing = slurmID
	if err := q.WritePilot(cfg); err != nil {
		b.log.Warn("slurm: recording a pilot's Slurm job ID; a later leader cannot adopt it", "pilot", name, "err", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.shut {
		go b.cancelQuietly(slurmID)
		return batchsystem.ErrShutdown
	}
	j := b.trackLocked(spec, slurmID, since, false)
	j.pilot = name
	b.pilots[name] = &pilotRec{name: name, root: st.root, owner: b.owner, shape: st.key, job: j}
	b.log.Debug("slurm: submitted pilot", "pilot", name, "shape", st.key, "slurm_id", slurmID)
	return nil
}

// killMembers stops grouped jobs: a queued one is withdrawn, a running
// one is stopped by its pilot through a kill flag. It returns what to
// wait for; b.mu must be held.
func (b *BatchSystem) killMembers(ids []batchsystem.ID) []*member {
	var wait []*member
	for _, id := range ids {
		m, ok := b.members[id]
		if !ok || m.killed {
			continue
		}
		if m.finished != nil {
			b.forgetMember(m)
			continue
		}
		if !m.adopted {
			if st := b.shapes[m.root+"|"+m.shape]; st != nil {
				st.outstanding--
			}
		}
		m.killed = true
		m.stopped = make(chan struct{})
		wait = append(wait, m)
	}
	return wait
}

// stopMembers withdraws or flags the killed members and waits until they
// stopped: their End is written, or their pilot ended.
func (b *BatchSystem) stopMembers(ctx context.Context, ms []*member) error {
	if len(ms) == 0 {
		return nil
	}
	var waits []chan struct{}
	for _, m := range ms {
		q := pilot.Queue{Root: m.root}
		ok, err := q.Withdraw(m.owner, m.shape, m.ticket)
		if err != nil {
			b.log.Warn("slurm: withdrawing a killed job", "ticket", m.ticket, "err", err)
		}
		b.mu.Lock()
		if ok {
			b.finishMember(m, batchsystem.FinishedJob{}) // never ran; closes stopped
		} else if m.stopped != nil {
			waits = append(waits, m.stopped)
			if err := q.Kill(m.ticket); err != nil {
				b.log.Warn("slurm: kill flag", "err", err)
			}
		}
		b.mu.Unlock()
	}
	b.kickGroup()
	timer := time.NewTimer(b.opts.KillTimeout)
	defer timer.Stop()
	for _, w := range waits {
		select {
		case <-w:
		case <-ctx.Done():
			return fmt.Errorf("slurm: waiting for killed grouped jobs to stop: %w", ctx.Err())
		case <-timer.C:
			return fmt.Errorf("%w: grouped jobs after %v", ErrKillTimeout, b.opts.KillTimeout)
		}
	}
	return nil
}

// Release cancels the pilots no job of this adapter needs: those whose
// shape has nothing outstanding and that run nothing of ours. The leader
// calls it when its workflow ends, so that idle pilots do not hold their
// allocation until their idle timeout.
func (b *BatchSystem) Release(ctx context.Context) error {
	b.mu.Lock()
	if b.shut {
		b.mu.Unlock()
		return batchsystem.ErrShutdown
	}
	busy := map[string]bool{}
	for _, m := range b.members {
		if m.finished == nil && !m.killed {
			busy[m.pilot] = true
		}
	}
	var ids []batchsystem.ID
	var victims []*job
	for _, p := range b.pilots {
		st := b.shapes[p.root+"|"+p.shape]
		if p.ended || p.job == nil || busy[p.name] || (p.owner == b.owner && st != nil && st.outstanding > 0) {
			continue
		}
		ids = append(ids, p.job.id)
	}
	for _, id := range ids {
		if j := b.jobs[id]; j != nil && !j.killed {
			if j.finished != nil {
				continue
			}
			j.killed = true
			j.stopped = make(chan struct{})
			victims = append(victims, j)
		}
	}
	b.mu.Unlock()
	return b.cancelAndWait(ctx, victims, nil)
}

// memberStatus says why a grouped job does not run yet; b.mu must be held.
func (b *BatchSystem) memberStatus(m *member) string {
	if m.killed || m.finished != nil || m.started {
		return ""
	}
	var pend []string
	for _, p := range b.pilots {
		if p.root == m.root && p.shape == m.shape && p.owner == m.owner && !p.ended && p.job != nil && p.job.phase != phaseRunning {
			st := p.job.state
			if p.job.reason != "" && p.job.reason != "None" {
				st += " (" + p.job.reason + ")"
			}
			pend = append(pend, "Slurm job "+p.job.slurmID+" "+st)
		}
	}
	slices.Sort(pend)
	if len(pend) > 0 {
		return "queued for a pilot; pilots waiting: " + strings.Join(pend, ", ")
	}
	return "queued for a pilot of shape " + m.shape
}
