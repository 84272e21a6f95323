package gaffer

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/gafferhq/gaffer/batchsystem"
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
