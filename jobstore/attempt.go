package jobstore

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/gafferhq/gaffer/gaffertype"
)

// Attempt records one attempt of a job: what it asked for, where and how
// long it ran, how it ended. The leader writes one when an attempt ends
// (or is killed), in the transaction that records the end, and keeps it
// after the job leaves the live set (Toil's stats): status, stats and
// report tools read them without a leader.
type Attempt struct {
	Job JobID
	// N is the job's attempt number, 1 for its first. A restart of a
	// failed workflow gives a job fresh tries, and counts from 1 again;
	// Epoch and Seq (the issue that named the attempt's files) tell such
	// attempts apart.
	N          int
	Epoch, Seq uint64

	Kind  string
	Name  string  // "" when the job has none
	Preds []JobID // the job's predecessors

	Requirements gaffertype.Requirements
	BatchSystem  string // which batch system ran it
	BatchID      string // its ID there
	Backing      string // the backing scheduler's ID (a Slurm job ID), if any
	Node         string // where it ran, when the batch system says

	Start, End time.Time     // zero when not known
	Wall, CPU  time.Duration // 0 when not known
	MaxRSS     int64         // peak resident memory, bytes; 0 when not known

	OK       bool
	ExitCode int
	Reason   string // how it ended: finished, failed, lost, killed, ...
	Error    string // the failure, for a failed attempt
	Log      string // path of the attempt's kept log, if one was kept
}

// attemptKey orders a store's attempts by job, then by issue.
func attemptKey(a *Attempt) []byte {
	k := make([]byte, 0, 24)
	k = binary.BigEndian.AppendUint64(k, uint64(a.Job))
	k = binary.BigEndian.AppendUint64(k, a.Epoch)
	return binary.BigEndian.AppendUint64(k, a.Seq)
}

// attemptFormat is the first byte of an encoded attempt.
const attemptFormat = 1

// encodeAttempt appends a compact binary form of a (its key holds Job,
// Epoch and Seq): varints, and strings with their length first. The
// store seals it with a checksum.
func encodeAttempt(b []byte, a *Attempt) []byte {
	b = append(b, attemptFormat)
	u := func(v uint64) { b = binary.AppendUvarint(b, v) }
	i := func(v int64) { b = binary.AppendVarint(b, v) }
	s := func(v string) { u(uint64(len(v))); b = append(b, v...) }
	t := func(v time.Time) {
		if v.IsZero() {
			i(0)
			return
		}
		i(v.UnixNano())
	}
	u(uint64(a.N))
	s(a.Kind)
	s(a.Name)
	u(uint64(len(a.Preds)))
	for _, p := range a.Preds {
		u(uint64(p))
	}
	r := &a.Requirements
	u(uint64(r.Cores * 1000))
	i(r.Memory)
	i(r.Disk)
	u(uint64(len(r.Accelerators)))
	for _, x := range r.Accelerators {
		s(x.Kind)
		i(int64(x.Count))
		s(x.Model)
	}
	flags := uint64(0)
	if r.Preemptible {
		flags |= 1
	}
	if a.OK {
		flags |= 2
	}
	u(flags)
	i(int64(r.Walltime))
	s(a.BatchSystem)
	s(a.BatchID)
	s(a.Backing)
	s(a.Node)
	t(a.Start)
	t(a.End)
	i(int64(a.Wall))
	i(int64(a.CPU))
	i(a.MaxRSS)
	i(int64(a.ExitCode))
	s(a.Reason)
	s(a.Error)
	s(a.Log)
	return b
}

func decodeAttempt(k, v []byte) (*Attempt, error) {
	if len(k) != 24 {
		return nil, fmt.Errorf("%w: attempt key %x", ErrCorrupt, k)
	}
	a := &Attempt{
		Job:   JobID(binary.BigEndian.Uint64(k)),
		Epoch: binary.BigEndian.Uint64(k[8:]),
		Seq:   binary.BigEndian.Uint64(k[16:]),
	}
	fail := func(err error) (*Attempt, error) {
		return nil, fmt.Errorf("%w: attempt %d.%d of job %s: %w", ErrCorrupt, a.Epoch, a.Seq, a.Job, err)
	}
	v, err := unseal(k, v)
	if err != nil {
		return fail(err)
	}
	if len(v) == 0 || v[0] != attemptFormat {
		return fail(fmt.Errorf("unknown format"))
	}
	v = v[1:]
	u := func() uint64 {
		x, n := binary.Uvarint(v)
		if n <= 0 {
			err = errShort
			return 0
		}
		v = v[n:]
		return x
	}
	i := func() int64 {
		x, n := binary.Varint(v)
		if n <= 0 {
			err = errShort
			return 0
		}
		v = v[n:]
		return x
	}
	s := func() string {
		n := u()
		if err != nil || n > uint64(len(v)) {
			err = errShort
			return ""
		}
		x := string(v[:n])
		v = v[n:]
		return x
	}
	t := func() time.Time {
		if n := i(); n != 0 {
			return time.Unix(0, n).UTC()
		}
		return time.Time{}
	}
	a.N = int(u())
	a.Kind, a.Name = s(), s()
	if n := u(); err == nil && n > 0 && n <= uint64(len(v)) {
		a.Preds = make([]JobID, 0, n)
		for range n {
			a.Preds = append(a.Preds, JobID(u()))
		}
	}
	r := &a.Requirements
	r.Cores = float64(u()) / 1000
	r.Memory, r.Disk = i(), i()
	if n := u(); err == nil && n <= uint64(len(v)) {
		for range n {
			r.Accelerators = append(r.Accelerators, gaffertype.Accelerator{Kind: s(), Count: int(i()), Model: s()})
		}
	}
	flags := u()
	r.Preemptible, a.OK = flags&1 != 0, flags&2 != 0
	r.Walltime = time.Duration(i())
	a.BatchSystem, a.BatchID, a.Backing, a.Node = s(), s(), s(), s()
	a.Start, a.End = t(), t()
	a.Wall, a.CPU, a.MaxRSS = time.Duration(i()), time.Duration(i()), i()
	a.ExitCode = int(i())
	a.Reason, a.Error, a.Log = s(), s(), s()
	if err != nil {
		return fail(err)
	}
	return a, nil
}
