package scaler

import (
	"cmp"
	"fmt"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
)

// Shape is an amount of resources for an amount of time. For a job it is
// what the job asks for and how long it is expected to run; for a node type
// it is what one node offers and the length of one billing slice (the unit
// of time the packer reserves, an hour on most clouds).
type Shape struct {
	WallTime    time.Duration
	Memory      int64   // bytes
	Cores       float64 // fractional cores allowed
	Disk        int64   // bytes
	Preemptible bool    // job: may run on a preemptible node; node: may be taken away
}

// Compare orders shapes as Toil does: preemptible shapes before
// non-preemptible ones, then by memory, cores, disk and wall time, all
// ascending. It returns -1, 0 or +1.
//
// The packer relies on this order twice: node types are tried smallest
// first (so a preemptible type is preferred to a non-preemptible one of any
// size, for jobs that allow it), and jobs are packed largest first.
func (s Shape) Compare(o Shape) int {
	if s.Preemptible != o.Preemptible {
		if s.Preemptible {
			return -1
		}
		return 1
	}
	if c := cmp.Compare(s.Memory, o.Memory); c != 0 {
		return c
	}
	if c := cmp.Compare(s.Cores, o.Cores); c != 0 {
		return c
	}
	if c := cmp.Compare(s.Disk, o.Disk); c != 0 {
		return c
	}
	return cmp.Compare(s.WallTime, o.WallTime)
}

func (s Shape) String() string {
	p := ""
	if s.Preemptible {
		p = " preemptible"
	}
	return fmt.Sprintf("{%s %s mem, %g cores, %s disk%s}", s.WallTime, formatBytes(s.Memory), s.Cores, formatBytes(s.Disk), p)
}

// fits reports whether a job of shape job fits in free resources s: enough
// memory, cores and disk, and a non-preemptible job never on a preemptible
// node.
func (s Shape) fits(job Shape) bool {
	return job.Memory <= s.Memory && job.Cores <= s.Cores && job.Disk <= s.Disk &&
		(job.Preemptible || !s.Preemptible)
}

// JobShape is the shape of a job with the given requirements that is
// expected to run for wall. Accelerators are not part of a shape.
func JobShape(req batchsystem.Requirements, wall time.Duration) Shape {
	return Shape{WallTime: wall, Memory: req.Memory, Cores: req.Cores, Disk: req.Disk, Preemptible: req.Preemptible}
}

// formatBytes writes n in binary units, for messages only.
func formatBytes(n int64) string {
	const unit = 1 << 10
	if n < unit && n > -unit {
		return fmt.Sprintf("%dB", n)
	}
	v := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB", "PiB"} {
		v /= unit
		if v < unit && v > -unit {
			return fmt.Sprintf("%.4g%s", v, u)
		}
	}
	return fmt.Sprintf("%.4gEiB", v/unit)
}
