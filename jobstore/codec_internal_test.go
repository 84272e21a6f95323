package jobstore

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/batchsystem"
)

// fullJob sets every field of a record to something other than its zero.
func fullJob() *Job {
	return &Job{
		ID:    JobID(1) << 40,
		Kind:  "example.kind",
		Name:  "näme with spaces \x00 and a NUL",
		State: StateFollowOns,
		Preds: []JobID{1, 2, math.MaxUint64, 1 << 33},
		Children: IDList{
			{First: 10, N: 100000},
			{First: 1 << 50, N: 1},
		},
		FollowOns: IDList{{First: 7, N: 3}},
		Requirements: batchsystem.Requirements{
			Cores:       0.1,
			Memory:      62<<30 + 1,
			Disk:        math.MaxInt64,
			Preemptible: true,
			Walltime:    36*time.Hour + time.Nanosecond,
			Accelerators: []batchsystem.Accelerator{
				{Kind: "gpu", Count: 2, Model: "a100"},
				{Kind: "fpga", Count: -1},
			},
		},
		Checkpoint:       true,
		Tries:            3,
		Retries:          -1,
		Backoff:          18 * time.Second,
		NotBefore:        -5,
		InputPromises:    true,
		LastError:        "boom: " + string(bytes.Repeat([]byte("x"), 300)),
		LogTail:          "line 1\nline 2\n",
		Cause:            99,
		Backing:          "3.17/slurm-12345",
		Services:         IDList{{First: 40, N: 2}, {First: 50, N: 1}},
		ServiceOf:        12,
		ParentService:    41,
		Categories:       []string{"user:alice", "runner:gpu"},
		LeaderDeaths:     2,
		RequirementsFrom: `{"memory":{"$gaffer_promise":{"job":3}}}`,
		MemoryFactor:     1.5,
		MemoryCeiling:    8 << 30,
		Target:           "slurm",
		BatchSystem:      "slurm-big",
	}
}

func roundTrip(t *testing.T, j *Job, input []byte, scratch *[]byte) (*Job, []byte) {
	t.Helper()
	v, err := encodeValue(j, input, scratch)
	require.NoError(t, err)
	require.Equal(t, byte(j.State), v[0], "the state is the first byte, for filtering without decoding")
	state, rec, in, err := splitValue(key(j.ID), v)
	require.NoError(t, err)
	require.Equal(t, j.State, state)
	got, err := decodeRecord(j.ID, state, rec)
	require.NoError(t, err)
	return got, in
}

func TestCodecRoundTripEveryField(t *testing.T) {
	j := fullJob()
	input := []byte(`{"a":[1,2,3],"p":{"$gaffer.promise":{"job":5}}}`)
	got, in := roundTrip(t, j, input, nil)
	require.Equal(t, j, got)
	require.Equal(t, input, in)

	// Through decodeJob, with the key as the store writes it.
	v, err := encodeValue(j, input, nil)
	require.NoError(t, err)
	k := binary.BigEndian.AppendUint64(nil, uint64(j.ID))
	got, err = decodeJob(k, v)
	require.NoError(t, err)
	require.Equal(t, j, got)
}

func TestCodecRoundTripSmallJobs(t *testing.T) {
	for _, j := range []*Job{
		{ID: 1, Kind: "k", State: StatePending, Retries: -1},
		{ID: 2, State: StateDone},
		{ID: 3, Kind: "k", State: StateCancelled, Requirements: batchsystem.Requirements{Cores: math.Inf(1)}},
		{ID: 4, Kind: "k", State: StateSkipped, Cause: 1, Tries: math.MaxInt32, Retries: math.MinInt32},
	} {
		for _, input := range [][]byte{nil, []byte("null"), bytes.Repeat([]byte{0xff}, 1000)} {
			got, in := roundTrip(t, j, input, nil)
			require.Equal(t, j, got)
			require.Equal(t, len(input), len(in))
			require.True(t, bytes.Equal(input, in))
		}
	}
}

// The fields added for services and categories are written only when
// set: a record without them is exactly as long as before they existed,
// so stores written before them read back unchanged.
func TestCodecOptionalTail(t *testing.T) {
	plain := &Job{ID: 1, Kind: "k", State: StatePending, Retries: -1, Backing: "b"}
	v0, err := encodeValue(plain, nil, nil)
	require.NoError(t, err)
	for _, j := range []*Job{
		{ID: 1, Kind: "k", State: StatePending, Retries: -1, Backing: "b", ServiceOf: 7},
		{ID: 1, Kind: "k", State: StateServices, Retries: -1, Backing: "b", Services: IDList{{First: 2, N: 3}}},
		{ID: 1, Kind: "k", State: StatePending, Retries: -1, Backing: "b", Categories: []string{""}},
		{ID: 1, Kind: "k", State: StatePending, Retries: -1, Backing: "b", BatchSystem: "slurm"},
		{ID: 1, Kind: "k", State: StatePending, Retries: -1, Backing: "b", Target: "gpu"},
	} {
		v, err := encodeValue(j, nil, nil)
		require.NoError(t, err)
		require.Greater(t, len(v), len(v0))
		got, _ := roundTrip(t, j, nil, nil)
		require.Equal(t, j, got)
	}
	got, _ := roundTrip(t, plain, nil, nil)
	require.Equal(t, plain, got)
}

func TestCodecNaNCoresKeepTheirBits(t *testing.T) {
	j := &Job{ID: 1, Kind: "k", State: StatePending, Requirements: batchsystem.Requirements{Cores: math.NaN()}}
	got, _ := roundTrip(t, j, nil, nil)
	require.True(t, math.IsNaN(got.Requirements.Cores))
}

// A transaction reuses one scratch buffer for every record: values made
// earlier must not change when it is reused.
func TestCodecScratchReuse(t *testing.T) {
	var scratch []byte
	a, b := fullJob(), &Job{ID: 2, Kind: "short", State: StatePending, Retries: -1}
	va, err := encodeValue(a, []byte("in-a"), &scratch)
	require.NoError(t, err)
	keep := bytes.Clone(va)
	require.NotEmpty(t, scratch, "the scratch buffer is kept for the next record")
	vb, err := encodeValue(b, []byte("in-b"), &scratch)
	require.NoError(t, err)
	require.Equal(t, keep, va, "the first value is untouched by the second encode")

	fresh, err := encodeValue(b, []byte("in-b"), nil)
	require.NoError(t, err)
	require.Equal(t, fresh, vb, "scratch or not, the same bytes")
	got, in := roundTrip(t, a, []byte("in-a"), &scratch)
	require.Equal(t, a, got)
	require.Equal(t, "in-a", string(in))
}

func TestCodecRefusesBadValues(t *testing.T) {
	_, err := encodeValue(&Job{ID: 1, State: 0}, nil, nil)
	require.Error(t, err, "no state")
	_, err = encodeValue(&Job{ID: 1, State: StateServices + 1}, nil, nil)
	require.Error(t, err, "unknown state")

	v, err := encodeValue(fullJob(), []byte("input"), nil)
	require.NoError(t, err)
	_, rec, _, err := splitValue(key(fullJob().ID), v)
	require.NoError(t, err)
	require.NotEmpty(t, rec)

	// Every cut is an error, never a panic: a cut in the input, which
	// format 1 took as a shorter input, fails the checksum.
	for n := 0; n < len(v); n++ {
		_, r, _, err := splitValue(key(fullJob().ID), v[:n])
		if err == nil {
			t.Fatalf("cut at %d of %d: splitValue accepted it (record %d bytes)", n, len(v), len(r))
		}
	}
	// Every flipped bit too.
	for n := 0; n < len(v)*8; n++ {
		bad := bytes.Clone(v)
		bad[n/8] ^= 1 << (n % 8)
		_, _, _, err := splitValue(key(fullJob().ID), bad)
		require.Error(t, err, "bit %d flipped", n)
	}
	// A cut exactly where the optional tail (services, categories)
	// starts is a record written without it; every other cut is an error.
	head := fullJob()
	head.Services, head.ServiceOf, head.ParentService, head.Categories, head.LeaderDeaths = nil, 0, 0, nil, 0
	head.RequirementsFrom, head.MemoryFactor, head.MemoryCeiling, head.Target, head.BatchSystem = "", 0, 0, "", ""
	hv, err := encodeValue(head, nil, nil)
	require.NoError(t, err)
	_, hrec, _, err := splitValue(key(head.ID), hv)
	require.NoError(t, err)
	// Likewise a cut just before the leader-death count, added after the
	// tail, is a record of a gaffer that did not write it.
	nd := fullJob()
	nd.LeaderDeaths, nd.RequirementsFrom, nd.MemoryFactor, nd.MemoryCeiling, nd.Target, nd.BatchSystem = 0, "", 0, 0, "", ""
	ndv, err := encodeValue(nd, nil, nil)
	require.NoError(t, err)
	_, ndrec, _, err := splitValue(key(nd.ID), ndv)
	require.NoError(t, err)
	// And just before the requirement promises and the memory policy.
	nm := fullJob()
	nm.RequirementsFrom, nm.MemoryFactor, nm.MemoryCeiling, nm.Target, nm.BatchSystem = "", 0, 0, "", ""
	nmv, err := encodeValue(nm, nil, nil)
	require.NoError(t, err)
	_, nmrec, _, err := splitValue(key(nm.ID), nmv)
	require.NoError(t, err)
	// And just before the batch system asked for and routed to.
	nr := fullJob()
	nr.Target, nr.BatchSystem = "", ""
	nrv, err := encodeValue(nr, nil, nil)
	require.NoError(t, err)
	_, nrrec, _, err := splitValue(key(nr.ID), nrv)
	require.NoError(t, err)
	for n := range len(rec) {
		got, err := decodeRecord(1, StatePending, rec[:n])
		switch n {
		case len(nrrec):
			require.NoError(t, err)
			require.Empty(t, got.BatchSystem)
			require.Equal(t, fullJob().MemoryCeiling, got.MemoryCeiling)
			continue
		case len(nmrec):
			require.NoError(t, err)
			require.Empty(t, got.RequirementsFrom)
			continue
		case len(hrec):
			require.NoError(t, err)
			require.Empty(t, got.Services)
			continue
		case len(ndrec):
			require.NoError(t, err)
			require.Zero(t, got.LeaderDeaths)
			continue
		}
		require.Error(t, err, "record cut at %d of %d", n, len(rec))
	}

	bad := bytes.Clone(v)
	bad[1] = recordFormat + 1
	_, _, _, err = splitValue(key(fullJob().ID), bad)
	require.ErrorContains(t, err, "format")

	bad = bytes.Clone(v)
	bad[0] = 0
	_, err = decodeJob(binary.BigEndian.AppendUint64(nil, 1), bad)
	require.ErrorIs(t, err, ErrCorrupt, "state 0")
	bad[0] = byte(StateServices + 1)
	_, err = decodeJob(binary.BigEndian.AppendUint64(nil, 1), bad)
	require.ErrorIs(t, err, ErrCorrupt, "unknown state")

	_, err = decodeJob([]byte{1, 2, 3}, v)
	require.ErrorIs(t, err, ErrCorrupt, "short key")

	// A huge count in a damaged record is refused before anything is
	// allocated for it.
	var e enc
	e.s("k")
	e.s("")
	e.u(0)
	e.u(math.MaxUint64) // preds
	_, err = decodeRecord(1, StatePending, e.b)
	require.Error(t, err)

	// An empty ID range is damage.
	e = enc{}
	e.s("k")
	e.s("")
	e.u(0)
	e.u(0)
	e.ids(IDList{{First: 5, N: 0}})
	_, err = decodeRecord(1, StatePending, e.b)
	require.Error(t, err)
}

// The store must not write a record it will refuse to read: a job with an
// empty ID range is encoded without complaint, then decodes as corrupt,
// and a corrupt job record makes the whole store unreadable on resume.
func TestCodecEncodesOnlyWhatItDecodes(t *testing.T) {
	for name, j := range map[string]*Job{
		"empty child range":     {ID: 1, Kind: "k", State: StatePending, Children: IDList{{First: 5, N: 0}}},
		"child range from zero": {ID: 1, Kind: "k", State: StatePending, FollowOns: IDList{{First: 0, N: 2}}},
	} {
		_, encErr := encodeValue(j, nil, nil)
		require.Error(t, encErr, "%s: refused when written, not found corrupt when read", name)
		require.Contains(t, encErr.Error(), "bad id range", name)
	}
}

// A damaged ID range is reported as such, not as a truncated record.
func TestCodecReportsWhatIsDamaged(t *testing.T) {
	// The encoder refuses empty ranges, so damage one after encoding:
	// the record of this job starts kind "k", name "", flags, no
	// predecessors, one child range (5, 1): the range's count is byte 7.
	j := &Job{ID: 1, Kind: "k", State: StatePending, Children: IDList{{First: 5, N: 1}}}
	v, err := encodeValue(j, nil, nil)
	require.NoError(t, err)
	_, rec, _, err := splitValue(key(j.ID), v)
	require.NoError(t, err)
	require.Equal(t, []byte{1, 'k', 0, 0, 0, 1, 5, 1}, rec[:8])
	rec[7] = 0
	_, err = decodeRecord(1, j.State, rec)
	require.Error(t, err)
	require.True(t, bytes.Contains([]byte(err.Error()), []byte("empty id range")), "got %v", err)
}

func FuzzDecodeJob(f *testing.F) {
	k := binary.BigEndian.AppendUint64(nil, 42)
	for _, j := range []*Job{fullJob(), {ID: 42, Kind: "k", State: StatePending, Retries: -1}} {
		v, err := encodeValue(j, []byte(`{"x":1}`), nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(k, v)
		f.Add(k, v[:len(v)/2])
	}
	f.Add(k, []byte{})
	f.Add([]byte{}, []byte{1, 1, 0})
	f.Add(k, []byte{1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, k, v []byte) {
		j, err := decodeJob(k, v)
		if err != nil {
			if j != nil {
				t.Fatalf("a job and an error: %+v, %v", j, err)
			}
			return
		}
		if len(k) != 8 || !j.State.Valid() {
			t.Fatalf("decoded %+v from key %x", j, k)
		}
		// What decodes re-encodes to a value that decodes the same.
		_, _, input, err := splitValue(k, v)
		if err != nil {
			t.Fatalf("decodeJob accepted a value splitValue refuses: %v", err)
		}
		v2, err := encodeValue(j, input, nil)
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", j, err)
		}
		j2, err := decodeJob(k, v2)
		if err != nil {
			t.Fatalf("re-decoding: %v", err)
		}
		v3, err := encodeValue(j2, input, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(v2, v3) {
			t.Fatalf("encode(decode(v)) is not a fixed point:\n%x\n%x", v2, v3)
		}
	})
}
