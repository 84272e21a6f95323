package scaler

import "math"

// The memory a node loses to its kernel, kubelet and system daemons follows
// GKE's published reservation table, plus an eviction threshold, as in
// Toil (PR #4267). Toil chose it as a deliberate over-estimate of what any
// cluster manager takes; we keep it so estimates match Toil's.
const (
	evictionThreshold  = 100 << 20 // 100 MiB
	reserveSmallLimit  = 1 << 30   // nodes under 1 GiB lose a flat amount
	reserveSmallAmount = 255 << 20
	osDiskSize         = 5_000_000_000 // 5 GB for the OS and images
)

var reserveSteps = [...]struct {
	upTo     float64 // bytes; the slice of memory below this breakpoint...
	fraction float64 // ...loses this fraction
}{
	{4 << 30, 0.25},
	{8 << 30, 0.20},
	{16 << 30, 0.10},
	{128 << 30, 0.06},
	{math.Inf(1), 0.02},
}

// MemoryOverhead is the memory, in bytes, that a node with memory bytes
// cannot give to jobs: 255 MiB below 1 GiB, otherwise a progressive share
// (25% of the first 4 GiB, 20% of the next 4, 10% of the next 8, 6% up to
// 128 GiB, 2% above) plus 100 MiB.
func MemoryOverhead(memory int64) int64 {
	if memory < reserveSmallLimit {
		return reserveSmallAmount
	}
	// Floating point on purpose: Toil sums the shares as floats and
	// truncates once, and we want the same bytes.
	reserved, accounted := 0.0, 0.0
	m := float64(memory)
	for _, s := range reserveSteps {
		limit := math.Min(s.upTo, m)
		reserved += s.fraction * (limit - accounted)
		accounted = limit
		if accounted >= m {
			break
		}
	}
	return int64(reserved) + evictionThreshold
}

// DiskOverhead is the disk, in bytes, that a node with disk bytes cannot
// give to jobs: 5 GB for the OS plus 5%, or all of it when that is more
// than the disk.
func DiskOverhead(disk int64) int64 {
	need := osDiskSize + int64(0.05*float64(disk))
	if disk <= need {
		return disk
	}
	return need
}

// ReserveOverhead returns the part of a node of shape full that jobs can
// use, after MemoryOverhead and DiskOverhead. Memory can come out negative
// for absurdly small nodes; such a node fits no job.
func ReserveOverhead(full Shape) Shape {
	s := full
	s.Memory -= MemoryOverhead(full.Memory)
	s.Disk -= DiskOverhead(full.Disk)
	return s
}
