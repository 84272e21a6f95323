package gaffer

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gafferhq/gaffer/jobstore"
)

// The live view. While a leader runs, its store is locked: no other
// process can read it. So the leader publishes what a person asks of a
// running workflow (status, why jobs wait, per-type stats) in a snapshot,
// <work dir>/live.json, which it replaces (temporary file, rename) at most
// once a second from its loop, and once more when its run ends. Building
// a snapshot costs the size of the summary, not of the workflow; it is
// written by a goroutine of its own, so a slow disk never holds the loop.
// Readers never talk to the leader: they read the file, and so they never
// wait on the loop, however long a commit takes; they see a snapshot as
// old as that commit. docs/gaffer-command.md says why this design and not
// a socket.
//
// A reader asks for the reasons of particular jobs with request files,
// <work dir>/control/why-<job>, which the leader answers in the snapshots
// that follow (LiveStatus.Asked) and forgets a minute after they were made.

// LiveFile is the name of the live snapshot in the work directory.
const LiveFile = "live.json"

const (
	liveInterval = time.Second // least time between two snapshots
	liveWaiting  = 50          // jobs whose wait a snapshot explains
	liveVisit    = 10000       // jobs looked at to find them
	liveFailed   = 100         // failed jobs a snapshot lists
	liveAsked    = 100         // jobs explained on request
	liveErrMax   = 2000        // bytes kept of an error
	askedFor     = time.Minute // how long a why request is answered
	whyPrefix    = "why-"
)

// LiveStatus is a running leader's snapshot of its workflow
// (<work dir>/live.json).
type LiveStatus struct {
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Written time.Time `json:"written"`
	Started time.Time `json:"started"` // the run's start
	// Final marks the snapshot the leader wrote when its run ended (the
	// workflow finished, or the run stopped on an error or a cancelled
	// context): no later one follows from this leader.
	Final      bool   `json:"final"`
	Store      string `json:"store"`
	WorkDir    string `json:"work_dir"`
	WorkflowID string `json:"workflow_id"`
	Epoch      uint64 `json:"epoch"`
	// Status is the workflow's: running, succeeded, failed or cancelled.
	Status string `json:"status"`
	// NextID is the first job ID not yet given: the workflow's jobs are
	// j1 to NextID-1.
	NextID JobID          `json:"next_id"`
	Counts LiveCounts     `json:"counts"`
	Kinds  map[string]int `json:"kinds"` // live jobs by type
	// Failed lists the first jobs that failed by their own error, with it;
	// FailedTotal counts them all.
	Failed      []LiveJob `json:"failed,omitempty"`
	FailedTotal int       `json:"failed_total"`
	// Waiting explains up to 50 jobs that are not running: waiting jobs
	// first, then jobs queued in the batch system, then jobs whose body
	// is done and that wait for their successors.
	Waiting []LiveJob `json:"waiting,omitempty"`
	// Asked explains the jobs asked for with RequestWhy.
	Asked []LiveJob `json:"asked,omitempty"`
	// Stats counts the attempts that ended under this leader (since
	// Started), by job type; medians are within 1%.
	Stats []KindStats `json:"stats,omitempty"`
}

// LiveCounts are Leader.Status's counters.
type LiveCounts struct {
	Live     int `json:"live"`
	Ready    int `json:"ready"`
	Issued   int `json:"issued"`
	Backoff  int `json:"backoff"`
	Failed   int `json:"failed"`
	Skipped  int `json:"skipped"`
	Services int `json:"services"`
}

// LiveJob is a job and where it stands: why it waits, or how it failed.
type LiveJob struct {
	ID   JobID  `json:"id"`
	Kind string `json:"kind,omitempty"`
	Name string `json:"name,omitempty"`
	Why  string `json:"why"`
}

// Display names the job for people: "name (j12)" or "kind (j12)".
func (j LiveJob) Display() string {
	if j.Kind == "" && j.Name == "" {
		return j.ID.String()
	}
	return jobstore.DisplayName(j.Name, j.Kind, j.ID.String())
}

// KindStats sums up the attempts of one job type.
type KindStats struct {
	Kind      string `json:"kind"`
	Jobs      int    `json:"jobs"`      // jobs with at least one attempt
	Attempts  int    `json:"attempts"`  // attempts recorded
	Succeeded int    `json:"succeeded"` // attempts that succeeded
	Failed    int    `json:"failed"`    // attempts that failed (killed and lost ones included)
	Retries   int    `json:"retries"`   // attempts after a job's first: Attempts - Jobs
	Wall      Spread `json:"wall"`
	CPU       Spread `json:"cpu"`
	PeakRSS   int64  `json:"peak_rss"` // bytes; 0 when no attempt's is known
}

// Spread is the least, median and greatest of a time over the N attempts
// for which it is known.
type Spread struct {
	N      int           `json:"n"`
	Min    time.Duration `json:"min"`
	Median time.Duration `json:"median"`
	Max    time.Duration `json:"max"`
}

// LivePath is where the leader whose work directory is workDir publishes
// its snapshot.
func LivePath(workDir string) string { return filepath.Join(workDir, LiveFile) }

// ReadLiveStatus reads the snapshot in workDir. It fails with an error
// matching os.ErrNotExist when no leader has written one.
func ReadLiveStatus(workDir string) (*LiveStatus, error) {
	b, err := os.ReadFile(LivePath(workDir))
	if err != nil {
		return nil, fmt.Errorf("gaffer: live status: %w", err)
	}
	var s LiveStatus
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("gaffer: live status %s: %w", LivePath(workDir), err)
	}
	return &s, nil
}

// RequestWhy asks the leader whose work directory is workDir to explain
// jobs in its next snapshots (LiveStatus.Asked), for a minute. withdraw
// removes the requests. A path that no leader has used as its work
// directory is refused with ErrNotWorkDir.
func RequestWhy(workDir string, ids ...JobID) (withdraw func(), err error) {
	var made []string
	withdraw = func() {
		for _, f := range made {
			os.Remove(f)
		}
	}
	for _, id := range ids {
		name := whyPrefix + strconv.FormatUint(uint64(id), 10)
		if err := putRequest(workDir, name); err != nil {
			withdraw()
			return nil, err
		}
		made = append(made, filepath.Join(controlDir(workDir), name))
	}
	return withdraw, nil
}

// liveView is the leader's side: when to publish next, the per-type
// stats of the attempts that ended, and the writer's state. The loop's
// lock (Leader.mu) guards all but writing and wg.
type liveView struct {
	next    time.Time
	host    string
	stats   map[string]*kindAgg
	seen    []uint64 // jobs with an attempt recorded, by ID
	warned  bool     // a failed write was logged
	writing atomic.Bool
	wg      sync.WaitGroup
}

// publishLive writes a snapshot if a second has passed since the last
// one and the last one is written (final: at once, and waits for the
// write). The caller holds l.mu.
func (l *Leader) publishLive(final bool) {
	v := &l.live
	now := time.Now()
	if l.g == nil || (!final && (now.Before(v.next) || v.writing.Load())) {
		return
	}
	v.next = now.Add(liveInterval)
	s := l.liveSnapshot(now, final)
	if final {
		v.wg.Wait()
		l.writeLive(s)
		return
	}
	v.writing.Store(true)
	v.wg.Go(func() {
		defer v.writing.Store(false)
		l.writeLive(s)
	})
}

// endLive writes the run's last snapshot.
func (l *Leader) endLive() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.publishLive(true)
}

// writeLive writes snapshot s. It reads nothing of the leader's but its
// configuration and logger, and the warned flag, which only it touches
// (one write runs at a time).
func (l *Leader) writeLive(s *LiveStatus) {
	b, err := json.Marshal(s)
	if err == nil {
		err = writeFileAtomic(LivePath(l.cfg.WorkDir), b, false)
	}
	if err != nil && !l.live.warned {
		l.live.warned = true
		l.log.Warn("writing the live status (reported once)", "path", LivePath(l.cfg.WorkDir), "err", err)
	}
}

// liveSnapshot builds a snapshot: counters, failed jobs, a bounded
// sample of waiting jobs with their reasons, the jobs asked about, and
// the stats. Its cost does not grow with the workflow.
func (l *Leader) liveSnapshot(now time.Time, final bool) *LiveStatus {
	g, v := l.g, &l.live
	if v.host == "" {
		v.host, _ = os.Hostname()
	}
	s := &LiveStatus{
		PID: os.Getpid(), Host: v.host, Written: now.UTC(), Started: l.runStart.UTC(), Final: final,
		Store: l.cfg.Store, WorkDir: l.cfg.WorkDir, WorkflowID: l.meta.WorkflowID, Epoch: g.epoch,
		Status: g.outcome.String(), NextID: g.nextID,
		Counts: LiveCounts{
			Live: g.jobs.len(), Ready: g.readyLen(), Issued: len(g.issued), Backoff: g.backoff.Len(),
			Failed: len(g.failedOwn), Skipped: g.skipped, Services: g.services,
		},
		Kinds:       maps.Clone(g.perKind),
		FailedTotal: len(g.failedOwn),
	}
	for _, id := range g.failedOwn {
		if len(s.Failed) == liveFailed {
			break
		}
		if j := g.jobs.get(id); j != nil {
			s.Failed = append(s.Failed, LiveJob{ID: id, Kind: j.kind, Name: j.extra().name, Why: clip(j.extra().lastError)})
		}
	}
	s.Waiting = l.liveWaiting()
	s.Asked = l.liveAsked(now)
	s.Stats = v.kindStats()
	return s
}

func (l *Leader) liveJob(id JobID) LiveJob {
	g := l.g
	lj := LiveJob{ID: id}
	j := g.jobs.get(id)
	switch {
	case j != nil:
		lj.Kind, lj.Name, lj.Why = j.kind, j.extra().name, clip(l.why(id))
	case g.finishedJob(id):
		lj.Why = "done"
	default:
		lj.Why = fmt.Sprintf("no such job: the workflow's jobs are j1 to j%d", uint64(g.nextID)-1)
	}
	return lj
}

// liveWaiting explains up to liveWaiting jobs that are not running,
// found among at most liveVisit jobs.
func (l *Leader) liveWaiting() []LiveJob {
	var waiting, queued, rest []*ljob
	visited, asks := 0, 0
	for _, j := range l.g.jobs.all() {
		if visited++; visited > liveVisit || len(waiting) == liveWaiting {
			break
		}
		switch {
		case j.state == jobstore.StatePending && j.where == isIssued:
			// Queued in the batch system, if it says why; it is asked
			// about a bounded number of jobs (each may cost it a search).
			if sched := l.routes[j.route].sched; sched != nil && len(queued) < liveWaiting && asks < 2*liveWaiting {
				if asks++; sched.SchedulingStatus(j.bsID) != "" {
					queued = append(queued, j)
				}
			}
		case j.state == jobstore.StatePending:
			waiting = append(waiting, j)
		case j.state == jobstore.StateDone, j.state == jobstore.StateFailed && j.extra().lastError != "":
			// Done, or listed with the failed jobs.
		default:
			if len(rest) < liveWaiting {
				rest = append(rest, j)
			}
		}
	}
	var out []LiveJob
	for _, part := range [][]*ljob{waiting, queued, rest} {
		slices.SortFunc(part, func(a, b *ljob) int { return cmp.Compare(a.id, b.id) })
		for _, j := range part {
			if len(out) == liveWaiting {
				return out
			}
			out = append(out, l.liveJob(j.id))
		}
	}
	return out
}

// liveAsked answers the why requests in the control folder, and removes
// those older than askedFor.
func (l *Leader) liveAsked(now time.Time) []LiveJob {
	dir := controlDir(l.cfg.WorkDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var ids []JobID
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, whyPrefix) || strings.Contains(name, ".tmp") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimPrefix(name, whyPrefix), 10, 64)
		info, ierr := e.Info()
		if err != nil || ierr == nil && now.Sub(info.ModTime()) > askedFor {
			os.Remove(filepath.Join(dir, name))
			continue
		}
		if len(ids) < liveAsked {
			ids = append(ids, JobID(n))
		}
	}
	slices.Sort(ids)
	var out []LiveJob
	for _, id := range ids {
		out = append(out, l.liveJob(id))
	}
	return out
}

func clip(s string) string {
	if len(s) <= liveErrMax {
		return s
	}
	return s[:liveErrMax] + "…"
}

// recordLive counts attempts that ended (their records are committed).
// The caller holds l.mu.
func (l *Leader) recordLive(as []jobstore.Attempt) {
	v := &l.live
	if v.stats == nil {
		v.stats = map[string]*kindAgg{}
	}
	for i := range as {
		a := &as[i]
		k := v.stats[a.Kind]
		if k == nil {
			k = &kindAgg{}
			v.stats[a.Kind] = k
		}
		if w, bit := uint64(a.Job)/64, uint64(1)<<(uint64(a.Job)%64); a.Job < l.g.nextID {
			if int(w) >= len(v.seen) {
				v.seen = append(v.seen, make([]uint64, int(w)+1-len(v.seen))...)
			}
			if v.seen[w]&bit == 0 {
				v.seen[w] |= bit
				k.jobs++
			}
		}
		k.add(a)
	}
}

func (v *liveView) kindStats() []KindStats {
	out := make([]KindStats, 0, len(v.stats))
	for _, kind := range slices.Sorted(maps.Keys(v.stats)) {
		k := v.stats[kind]
		out = append(out, KindStats{
			Kind: kind, Jobs: k.jobs, Attempts: k.attempts, Succeeded: k.ok, Failed: k.attempts - k.ok,
			Retries: k.attempts - k.jobs, Wall: k.wall.spread(), CPU: k.cpu.spread(), PeakRSS: k.peak,
		})
	}
	return out
}

// kindAgg sums up a job type's attempts in constant memory: the medians
// come from histograms.
type kindAgg struct {
	jobs, attempts, ok int
	wall, cpu          hist
	peak               int64
}

func (k *kindAgg) add(a *jobstore.Attempt) {
	k.attempts++
	if a.OK {
		k.ok++
	}
	k.wall.add(a.Wall)
	k.cpu.add(a.CPU)
	k.peak = max(k.peak, a.MaxRSS)
}

// hist counts durations in buckets whose bounds grow by 2%: the middle of
// a bucket is within 1% of every duration in it. A week fits in 1,750
// buckets.
type hist struct {
	n        int
	min, max time.Duration
	buckets  []uint32
}

var histLog = math.Log(1.02)

func (h *hist) add(d time.Duration) {
	if d <= 0 {
		return // not known
	}
	b := int(math.Log(float64(d)) / histLog)
	if b >= len(h.buckets) {
		h.buckets = append(h.buckets, make([]uint32, b+1-len(h.buckets))...)
	}
	h.buckets[b]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	h.max = max(h.max, d)
	h.n++
}

// spread returns the least, the greatest, and the lower median (within
// 1%, and never outside the other two).
func (h *hist) spread() Spread {
	if h.n == 0 {
		return Spread{}
	}
	s := Spread{N: h.n, Min: h.min, Max: h.max}
	rank, seen := (h.n-1)/2, 0
	for b, c := range h.buckets {
		if seen += int(c); seen > rank {
			mid := time.Duration(math.Exp((float64(b) + 0.5) * histLog))
			s.Median = min(max(mid, h.min), h.max)
			break
		}
	}
	return s
}

// WorkDirStore reads a work directory's marker: the path of the store
// whose leader made it, and the workflow's ID. A directory without one
// is refused with ErrNotWorkDir.
func WorkDirStore(workDir string) (store, workflowID string, err error) {
	if err := checkWorkDir(workDir); err != nil {
		return "", "", err
	}
	b, err := os.ReadFile(filepath.Join(workDir, markerFile))
	var m marker
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err != nil {
		return "", "", fmt.Errorf("%w: %s: unreadable %s: %w", ErrNotWorkDir, workDir, markerFile, err)
	}
	return m.Store, m.WorkflowID, nil
}

// issueSlice is the longest the leader issues one batch of jobs before
// it publishes its state and looks for requests: with a batch system
// that is slow to take jobs (worker processes, sbatch), a batch of
// thousands could otherwise keep a cancel waiting for many seconds.
const issueSlice = 500 * time.Millisecond

// requeueRest gives back the jobs of a batch left unissued.
func (l *Leader) requeueRest(batch []*ljob) {
	for _, j := range batch {
		if j != nil {
			l.g.requeue(j)
		}
	}
}
