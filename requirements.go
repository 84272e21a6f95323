package gaffer

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/jobstore"
)

// Requirements is what a job asks of the machine that runs it: cores
// (fractional), memory and disk in bytes, accelerators, and whether it may
// run on preemptible nodes. Zero fields take the leader's defaults
// (Config.DefaultRequirements, which default to Toil's: 1 core, 2 GiB of
// memory, 2 GiB of disk).
type Requirements = batchsystem.Requirements

// Accelerator asks for accelerators of one kind, such as GPUs.
type Accelerator = batchsystem.Accelerator

// ParseBytes reads a human size the way Toil does: a number, optional
// spaces, and an optional unit. Decimal units are powers of 1000 ("K",
// "M", "G", "T", "P", with or without "B"), binary ones powers of 1024
// ("Ki", "Mi", "Gi", "Ti", "Pi", with or without "B"); units are
// case-insensitive and a bare number is bytes. "2Gi" is 2,147,483,648;
// "2G" is 2,000,000,000; "62.5 Gi" is 67,108,864,000. The result is
// truncated to whole bytes.
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return !(unicode.IsDigit(r) || r == '.') })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.TrimSpace(t[i:])
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" || v < 0 {
		return 0, fmt.Errorf("%w: size %q: want a number and a unit such as 2Gi or 500M", ErrBadRequirement, s)
	}
	u := strings.ToLower(unit)
	u = strings.TrimSuffix(u, "b")
	mult := 1.0
	if u != "" {
		bin := strings.HasSuffix(u, "i")
		u = strings.TrimSuffix(u, "i")
		pos := strings.Index("kmgtpe", u)
		if len(u) != 1 || pos < 0 {
			return 0, fmt.Errorf("%w: size %q: unknown unit %q", ErrBadRequirement, s, unit)
		}
		base := 1000.0
		if bin {
			base = 1024
		}
		mult = math.Pow(base, float64(pos+1))
	}
	b := v * mult
	// float64(math.MaxInt64) is 2^63, one more than an int64 holds.
	if b >= math.MaxInt64 {
		return 0, fmt.Errorf("%w: size %q is too large", ErrBadRequirement, s)
	}
	return int64(b), nil
}

// JobOption sets something about one job: its requirements, name, retry
// count. Pass options to JobType.New; the functions of this package make
// them.
type JobOption struct{ set func(*node) error }

// Cores asks for n cores; fractions are allowed (0.1 is the smallest unit
// the local batch system accounts).
func Cores(n float64) JobOption {
	return JobOption{func(j *node) error {
		if n < 0 || math.IsNaN(n) || math.IsInf(n, 0) {
			return fmt.Errorf("%w: cores %v", ErrBadRequirement, n)
		}
		j.req.Cores = n
		return nil
	}}
}

// Memory asks for memory, as bytes in a human form ("2Gi", "500M").
func Memory(size string) JobOption {
	return JobOption{func(j *node) (err error) {
		j.req.Memory, err = ParseBytes(size)
		if err != nil {
			err = fmt.Errorf("memory: %w", err)
		}
		return err
	}}
}

// Disk asks for scratch disk, as bytes in a human form ("10Gi").
func Disk(size string) JobOption {
	return JobOption{func(j *node) (err error) {
		j.req.Disk, err = ParseBytes(size)
		if err != nil {
			err = fmt.Errorf("disk: %w", err)
		}
		return err
	}}
}

// Accelerators asks for n accelerators of a kind ("gpu").
func Accelerators(kind string, n int) JobOption {
	return JobOption{func(j *node) error {
		if n < 0 || kind == "" {
			return fmt.Errorf("%w: accelerators %q × %d", ErrBadRequirement, kind, n)
		}
		j.req.Accelerators = append(j.req.Accelerators, Accelerator{Kind: kind, Count: n})
		return nil
	}}
}

// Preemptible lets the job run on a node that may be taken away.
func Preemptible(ok bool) JobOption {
	return JobOption{func(j *node) error { j.req.Preemptible = ok; return nil }}
}

// Walltime tells batch systems how long the job may run at most.
func Walltime(d time.Duration) JobOption {
	return JobOption{func(j *node) error {
		if d < 0 {
			return fmt.Errorf("%w: walltime %v", ErrBadRequirement, d)
		}
		j.req.Walltime = d
		return nil
	}}
}

// WithRequirements sets all requirements at once.
func WithRequirements(r Requirements) JobOption {
	return JobOption{func(j *node) error { *j.req = r; return nil }}
}

// Name gives the job a display name, used in logs and errors.
func Name(name string) JobOption {
	return JobOption{func(j *node) error { j.name = name; return nil }}
}

// Retries sets how many times the job is retried after failing: 0 runs
// it once. Without this option the leader's Config.RetryCount applies.
func Retries(n int) JobOption {
	return JobOption{func(j *node) error {
		if n < 0 {
			return fmt.Errorf("%w: retries %d", ErrBadRequirement, n)
		}
		j.retries = int32(n)
		return nil
	}}
}

// Checkpoint makes the job a checkpoint: if its subtree fails totally
// and it has tries left, its subtree is removed and the job runs again
// (charging a try). A checkpoint must have no successors or services
// when it is submitted; it adds them while it runs.
func Checkpoint() JobOption {
	return JobOption{func(j *node) error { j.checkpoint = true; return nil }}
}

// Category makes the job count against the concurrency limits named
// (Config.CategoryLimits): it is issued only while every one of them has
// room. Names are free-form, such as "user:alice" or "runner:gpu".
func Category(names ...string) JobOption {
	return JobOption{func(j *node) error {
		for _, c := range names {
			if c == "" {
				return fmt.Errorf("Category: empty name")
			}
		}
		j.categories = append(slices.Clip(j.categories), names...)
		return nil
	}}
}

// reqPromises are requirements that come from other jobs' results,
// resolved when the job is issued (Toil's PromisedRequirement). Each is
// the encoded Input, a promise or a value.
type reqPromises struct {
	Cores  json.RawMessage `json:"cores,omitempty"`
	Memory json.RawMessage `json:"memory,omitempty"`
	Disk   json.RawMessage `json:"disk,omitempty"`
}

func promisedReq(field string, in interface{ encode() ([]byte, error) }) JobOption {
	return JobOption{func(j *node) error {
		b, err := in.encode()
		if err != nil {
			return fmt.Errorf("%s from a promise: %w", field, err)
		}
		r := &reqPromises{}
		if old := j.edges().reqFrom; old != nil {
			*r = *old
		}
		switch field {
		case "cores":
			r.Cores = b
		case "memory":
			r.Memory = b
		default:
			r.Disk = b
		}
		j.linked().reqFrom = r
		return nil
	}}
}

// CoresFrom, MemoryFrom and DiskFrom take the job's cores, memory (bytes)
// or disk (bytes) from another job's result, known when this job is
// issued: for example memory sized from an input file an earlier job
// measured. The promising job must run before this one (be its
// predecessor, or before it in the graph); a graph where it cannot is
// refused when it is submitted, naming both jobs. For a function of
// several results, let a small job compute it and promise its result.
func CoresFrom(cores Input[float64]) JobOption { return promisedReq("cores", cores) }

// MemoryFrom: see CoresFrom.
func MemoryFrom(bytes Input[int64]) JobOption { return promisedReq("memory", bytes) }

// DiskFrom: see CoresFrom.
func DiskFrom(bytes Input[int64]) JobOption { return promisedReq("disk", bytes) }

// memRetry is the policy of MoreMemoryOnRetry.
type memRetry struct {
	Factor  float64 `json:"f"`
	Ceiling int64   `json:"c,omitempty"`
}

// MoreMemoryOnRetry: when an attempt of the job ends because it ran out
// of memory (the batch system reports batchsystem.MemLimit: over its
// request where the local batch system enforces it, Slurm's
// OUT_OF_MEMORY), its next try asks for factor times the memory, up to
// ceiling ("64Gi"; "" for none). Off by default. Given to Register, it
// applies to every job of the type. The attempt records, Why and the
// error of a job that still fails show the memory of each try.
func MoreMemoryOnRetry(factor float64, ceiling string) JobOption {
	return JobOption{func(j *node) error {
		if factor <= 1 || math.IsInf(factor, 0) || math.IsNaN(factor) {
			return fmt.Errorf("%w: MoreMemoryOnRetry factor %v: want more than 1", ErrBadRequirement, factor)
		}
		m := &memRetry{Factor: factor}
		if ceiling != "" {
			c, err := ParseBytes(ceiling)
			if err != nil {
				return fmt.Errorf("MoreMemoryOnRetry ceiling: %w", err)
			}
			m.Ceiling = c
		}
		j.memRetry = m
		return nil
	}}
}

// resolvedReqs are requirements a job's promises resolved to; nil fields
// were not promised.
type resolvedReqs struct {
	Cores  *float64 `json:"cores"`
	Memory *int64   `json:"memory"`
	Disk   *int64   `json:"disk"`
}

// resolveRequirements resolves the requirement promises of j, about to
// be issued, and gives them to the graph. A damaged store is ErrCorrupt;
// another error is the job's.
func (l *Leader) resolveRequirements(tx jobstore.ReadTx, j *ljob) error {
	rf := j.extra().reqFrom
	if rf == "" {
		return nil
	}
	r, err := readRequirements(tx, rf, l.g.finishedJob)
	if errors.Is(err, jobstore.ErrCorrupt) {
		return err
	}
	if err != nil {
		return fmt.Errorf("job %s: requirements: %w", j.display(), err)
	}
	l.g.requirementsResolved(j, r)
	return nil
}

// readRequirements resolves a job's stored requirement promises.
func readRequirements(tx jobstore.ReadTx, stored string, finished func(JobID) bool) (resolvedReqs, error) {
	var r resolvedReqs
	b, err := resolve(tx, []byte(stored), 0, finished)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%w: a promised requirement is not a number: %s", ErrBadRequirement, b)
	}
	switch {
	case r.Cores != nil && (*r.Cores < 0 || math.IsNaN(*r.Cores) || math.IsInf(*r.Cores, 0)):
		return r, fmt.Errorf("%w: promised cores %v", ErrBadRequirement, *r.Cores)
	case r.Memory != nil && *r.Memory < 0:
		return r, fmt.Errorf("%w: promised memory %d", ErrBadRequirement, *r.Memory)
	case r.Disk != nil && *r.Disk < 0:
		return r, fmt.Errorf("%w: promised disk %d", ErrBadRequirement, *r.Disk)
	}
	return r, nil
}

// requirementsResolved makes what j's promises resolved to its own
// requirements, when it is issued: its retries keep them, and the
// scaler sees them from then on.
func (g *graph) requirementsResolved(j *ljob, r resolvedReqs) {
	req := *j.req
	if r.Cores != nil {
		req.Cores = *r.Cores
	}
	if r.Memory != nil {
		req.Memory = *r.Memory
	}
	if r.Disk != nil {
		req.Disk = *r.Disk
	}
	j.req = g.shareReq(req)
	j.ext().reqFrom = ""
	j.compact()
	g.touch(j)
}

// moreMemory grows j's memory request after an attempt that ran out of
// memory, by its MoreMemoryOnRetry policy, and says so in msg.
func (g *graph) moreMemory(j *ljob, msg string) string {
	x := j.extra()
	cur := j.req.Memory
	if cur == 0 {
		cur = g.defaultMemory
	}
	if x.memFactor <= 1 {
		return msg + fmt.Sprintf(" [ran out of memory with %s]", fmtBytes(cur))
	}
	next := int64(float64(cur) * x.memFactor)
	if x.memCeiling > 0 {
		next = min(next, x.memCeiling)
	}
	if next <= cur {
		return msg + fmt.Sprintf(" [ran out of memory with %s, its ceiling]", fmtBytes(cur))
	}
	req := *j.req
	req.Memory = next
	j.req = g.shareReq(req)
	g.touch(j)
	return msg + fmt.Sprintf(" [ran out of memory with %s; the next try asks for %s]", fmtBytes(cur), fmtBytes(next))
}

// fmtBytes writes a size for people, in binary units ("150 MiB").
func fmtBytes(n int64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return strconv.FormatInt(n, 10) + " B"
	}
	v, u := float64(n)/1024, 0
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	return fmt.Sprintf("%.4g %ciB", v, units[u])
}
