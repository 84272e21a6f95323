package scaler

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The expected values were computed by hand from Toil's rule (and agree
// with toil.provisioners.clusterScaler.ClusterScaler._reserve_overhead).
func TestReserveOverheadMatchesToil(t *testing.T) {
	const gib = 1 << 30
	for _, c := range []struct {
		mem, disk         int64
		wantMem, wantDisk int64
	}{
		{1 * gb, 8 * gb, 732_613_120, 2_600_000_000}, // under 1 GiB: flat 255 MiB
		{60 * gb, 100 * gb, 54_534_205_809, 90 * gb},
		{64 * gib, 50 * gb, 62_730_513_941, 42_500_000_000},
		{128 * gib, 50 * gb, 127_326_822_073, 42_500_000_000},
		{260 * gb, 600 * gb, 247_436_647_670, 565 * gb},
	} {
		got := ReserveOverhead(Shape{Memory: c.mem, Disk: c.disk, Cores: 1})
		require.Equal(t, c.wantMem, got.Memory, "memory of %d", c.mem)
		require.Equal(t, c.wantDisk, got.Disk, "disk of %d", c.disk)
	}
}

func TestDiskOverheadTakesAllOfASmallDisk(t *testing.T) {
	require.Equal(t, int64(4*gb), DiskOverhead(4*gb))
	require.Equal(t, int64(0), ReserveOverhead(Shape{Memory: 4 * gb, Disk: 5 * gb}).Disk)
}
