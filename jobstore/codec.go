package jobstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"time"

	"github.com/gafferhq/gaffer/gaffertype"
)

// A stored job is one bbolt value:
//
//	state (1 byte) | format (1 byte) | uvarint record length | record | input
//
// The state comes first so that Jobs can filter without decoding; the
// input shares the value so that a million new jobs cost a million keys,
// not two million, inside the transaction that creates them. The record
// is a compact binary form, about 45 bytes for a small job against 110 in
// JSON; the difference is memory the leader holds until the commit.
//
// Format 2 ends with a CRC-32C (Castagnoli) of the key and the rest of the
// value, checked by every read: a damaged record is ErrCorrupt naming it,
// never a wrong value. Format 1 (no checksum) is still read.
const recordFormat = 2

const (
	recordFormatNoSum = 1
	sumLen            = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checksum is the CRC-32C of key and then value.
func checksum(key, value []byte) uint32 {
	return crc32.Update(crc32.Checksum(key, castagnoli), castagnoli, value)
}

// seal appends v's checksum, over key and v.
func seal(key, v []byte) []byte {
	return binary.BigEndian.AppendUint32(v, checksum(key, v))
}

// unseal checks and strips the checksum seal appended.
func unseal(key, v []byte) ([]byte, error) {
	if len(v) < sumLen {
		return nil, errShort
	}
	body := v[:len(v)-sumLen]
	if want, got := binary.BigEndian.Uint32(v[len(v)-sumLen:]), checksum(key, body); want != got {
		return nil, fmt.Errorf("checksum mismatch (stored %08x, computed %08x)", want, got)
	}
	return body, nil
}

var errShort = errors.New("record truncated")

type enc struct{ b []byte }

func (e *enc) u(v uint64)  { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) i(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) s(v string)  { e.u(uint64(len(v))); e.b = append(e.b, v...) }
func (e *enc) f(v float64) { e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(v)) }
func (e *enc) ids(l IDList) {
	e.u(uint64(len(l)))
	for _, r := range l {
		e.u(uint64(r.First))
		e.u(r.N)
	}
}

// encodeValue encodes j and input; scratch, if not nil, is reused for
// the record so that a transaction creating many jobs makes no garbage
// per job beyond the value itself.
func encodeValue(j *Job, input []byte, scratch *[]byte) ([]byte, error) {
	if !j.State.Valid() {
		return nil, fmt.Errorf("jobstore: job %s: invalid state %d", j.ID, j.State)
	}
	if err := errors.Join(validIDs("children", j.Children), validIDs("follow-ons", j.FollowOns), validIDs("services", j.Services)); err != nil {
		return nil, fmt.Errorf("jobstore: job %s: %w", j.ID, err)
	}
	var r enc
	if scratch != nil {
		r.b = (*scratch)[:0]
		defer func() { *scratch = r.b }()
	}
	r.s(j.Kind)
	r.s(j.Name)
	var flags uint64
	if j.Checkpoint {
		flags |= 1
	}
	if j.InputPromises {
		flags |= 2
	}
	if j.Requirements.Preemptible {
		flags |= 4
	}
	if j.Forwarded {
		flags |= 8
	}
	r.u(flags)
	r.u(uint64(len(j.Preds)))
	for _, p := range j.Preds {
		r.u(uint64(p))
	}
	r.ids(j.Children)
	r.ids(j.FollowOns)
	q := j.Requirements
	r.f(q.Cores)
	r.i(q.Memory)
	r.i(q.Disk)
	r.i(int64(q.Walltime))
	r.u(uint64(len(q.Accelerators)))
	for _, a := range q.Accelerators {
		r.s(a.Kind)
		r.i(int64(a.Count))
		r.s(a.Model)
	}
	r.i(int64(j.Tries))
	r.i(int64(j.Retries))
	r.i(int64(j.Backoff))
	r.i(j.NotBefore)
	r.s(j.LastError)
	r.s(j.LogTail)
	r.u(uint64(j.Cause))
	r.s(j.Backing)
	// Fields added later are written only when set, so that records of
	// older gaffers (which end here) read back unchanged, and most records
	// stay as small as before.
	routed := j.Target != "" || j.BatchSystem != ""
	more := j.RequirementsFrom != "" || j.MemoryFactor != 0 || j.MemoryCeiling != 0 || routed
	if len(j.Services) > 0 || j.ServiceOf != 0 || j.ParentService != 0 || len(j.Categories) > 0 || j.LeaderDeaths != 0 || more {
		r.ids(j.Services)
		r.u(uint64(j.ServiceOf))
		r.u(uint64(j.ParentService))
		r.u(uint64(len(j.Categories)))
		for _, c := range j.Categories {
			r.s(c)
		}
		if j.LeaderDeaths != 0 || more {
			r.u(uint64(j.LeaderDeaths))
		}
		if more {
			r.s(j.RequirementsFrom)
			r.f(j.MemoryFactor)
			r.i(j.MemoryCeiling)
			if routed {
				r.s(j.Target)
				r.s(j.BatchSystem)
			}
		}
	}

	out := make([]byte, 0, 2+binary.MaxVarintLen64+len(r.b)+len(input)+sumLen)
	out = append(out, byte(j.State), recordFormat)
	out = binary.AppendUvarint(out, uint64(len(r.b)))
	out = append(out, r.b...)
	out = append(out, input...)
	return seal(key(j.ID), out), nil
}

type dec struct {
	b   []byte
	err error
}

func (d *dec) u() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) i() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) s() string {
	n := d.u()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = errShort
		return ""
	}
	v := string(d.b[:n])
	d.b = d.b[n:]
	return v
}

func (d *dec) f() float64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.err = errShort
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

// count reads a length and refuses one longer than the bytes left could
// hold, so that a damaged record cannot make us allocate wildly.
func (d *dec) count() int {
	n := d.u()
	if d.err == nil && n > uint64(len(d.b)) {
		d.err = errShort
	}
	if d.err != nil {
		return 0
	}
	return int(n)
}

func (d *dec) ids() IDList {
	n := d.count()
	if n == 0 {
		return nil
	}
	l := make(IDList, n)
	for k := range l {
		l[k] = IDRange{First: JobID(d.u()), N: d.u()}
		if d.err == nil && (l[k].First == 0 || l[k].N == 0) {
			d.err = errors.New("empty id range")
		}
	}
	return l
}

// splitValue checks the stored value v of key and returns its state,
// record bytes and input.
func splitValue(key, v []byte) (state State, rec, input []byte, err error) {
	if len(v) < 3 {
		return 0, nil, nil, errShort
	}
	switch v[1] {
	case recordFormat:
		if v, err = unseal(key, v); err != nil {
			return 0, nil, nil, err
		}
	case recordFormatNoSum:
	default:
		return 0, nil, nil, fmt.Errorf("unknown record format %d", v[1])
	}
	n, k := binary.Uvarint(v[2:])
	if k <= 0 || n > uint64(len(v)-2-k) {
		return 0, nil, nil, errShort
	}
	rec = v[2+k : 2+k+int(n)]
	return State(v[0]), rec, v[2+k+int(n):], nil
}

func decodeRecord(id JobID, state State, rec []byte) (*Job, error) {
	d := dec{b: rec}
	j := &Job{ID: id, State: state}
	j.Kind = d.s()
	j.Name = d.s()
	flags := d.u()
	j.Checkpoint, j.InputPromises = flags&1 != 0, flags&2 != 0
	j.Requirements.Preemptible = flags&4 != 0
	j.Forwarded = flags&8 != 0
	if n := d.count(); n > 0 {
		j.Preds = make([]JobID, n)
		for k := range j.Preds {
			j.Preds[k] = JobID(d.u())
		}
	}
	j.Children = d.ids()
	j.FollowOns = d.ids()
	j.Requirements.Cores = d.f()
	j.Requirements.Memory = d.i()
	j.Requirements.Disk = d.i()
	j.Requirements.Walltime = time.Duration(d.i())
	if n := d.count(); n > 0 {
		j.Requirements.Accelerators = make([]gaffertype.Accelerator, n)
		for k := range j.Requirements.Accelerators {
			a := &j.Requirements.Accelerators[k]
			a.Kind, a.Count, a.Model = d.s(), int(d.i()), d.s()
		}
	}
	j.Tries = int(d.i())
	j.Retries = int(d.i())
	j.Backoff = time.Duration(d.i())
	j.NotBefore = d.i()
	j.LastError = d.s()
	j.LogTail = d.s()
	j.Cause = JobID(d.u())
	j.Backing = d.s()
	if d.err == nil && len(d.b) > 0 {
		j.Services = d.ids()
		j.ServiceOf = JobID(d.u())
		j.ParentService = JobID(d.u())
		if n := d.count(); n > 0 {
			j.Categories = make([]string, n)
			for k := range j.Categories {
				j.Categories[k] = d.s()
			}
		}
		if d.err == nil && len(d.b) > 0 {
			j.LeaderDeaths = int(d.u())
		}
		if d.err == nil && len(d.b) > 0 {
			j.RequirementsFrom = d.s()
			j.MemoryFactor = d.f()
			j.MemoryCeiling = d.i()
		}
		if d.err == nil && len(d.b) > 0 {
			j.Target = d.s()
			j.BatchSystem = d.s()
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	if !state.Valid() {
		return nil, fmt.Errorf("invalid state %d", state)
	}
	return j, nil
}

// validIDs refuses ranges the decoder would refuse: a job written must
// read back.
func validIDs(what string, l IDList) error {
	for _, r := range l {
		if r.First == 0 || r.N == 0 {
			return fmt.Errorf("%s: bad id range [%d,+%d)", what, r.First, r.N)
		}
	}
	return nil
}
