package gaffer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/gafferhq/gaffer/jobstore"
)

// placeholderKey marks a promise inside encoded JSON:
// {"$gaffer.promise":{"job":12,"path":["Addr"]}}. A negative job is a
// job being built, named by its temporary number; the leader rewrites it
// to the stored ID when it stores the job.
const placeholderKey = "$gaffer.promise"

type placeholder struct {
	Job  int64 `json:"job"`
	Path []any `json:"path,omitempty"` // string keys and int indexes into the value
}

type promiseRef struct {
	node *node          // a job being built, or
	id   jobstore.JobID // a stored job
	path []any
}

// Promise is the future return value of a job, or a part of it. Pass it
// in the input of a job that runs after the promising job; the leader
// resolves it before that job runs, and the job reads it with Get.
//
// A Promise can be the whole input (JobType.NewFrom), an element of a
// Collect, or a field anywhere in an input struct. Once resolved, it
// encodes as its plain value, so a job can pass a resolved promise on.
type Promise[T any] struct {
	// A promise of a whole job's result being built needs only the
	// node; ref is for the rest (a stored job, a part of a result), so
	// that a fan-out's million Results allocate nothing.
	node *node
	ref  *promiseRef
	val  T
	ok   bool
}

// target is what the promise refers to: a node being built or a stored
// job, and the path into its result; ok is false for the zero Promise.
func (p Promise[T]) target() (n *node, id jobstore.JobID, path []any, ok bool) {
	switch {
	case p.node != nil:
		return p.node, 0, nil, true
	case p.ref != nil:
		return p.ref.node, p.ref.id, p.ref.path, true
	}
	return nil, 0, nil, false
}

// ErrUnresolved is returned by Promise.Get for a promise that has not
// been resolved: one made in the running job rather than received in its
// input.
var ErrUnresolved = errors.New("gaffer: promise is not resolved yet; only promises received in a job's input have values")

// Get returns the promised value.
func (p Promise[T]) Get() (T, error) {
	if !p.ok {
		var zero T
		return zero, ErrUnresolved
	}
	return p.val, nil
}

// Resolved returns a promise that is already fulfilled with v, for tests
// and for code that takes either a promise or a value.
func Resolved[T any](v T) Promise[T] { return Promise[T]{val: v, ok: true} }

// MarshalJSON writes the value of a resolved promise, or a placeholder.
func (p Promise[T]) MarshalJSON() ([]byte, error) {
	return p.appendJSON(nil)
}

// appendJSON appends what MarshalJSON returns to b.
func (p Promise[T]) appendJSON(b []byte) ([]byte, error) {
	if p.ok {
		v, err := json.Marshal(p.val)
		return append(b, v...), err
	}
	n, id, path, ok := p.target()
	if !ok {
		return nil, errors.New("gaffer: zero Promise: make promises with Job.Result")
	}
	job := int64(id)
	if n != nil {
		job = n.tmp // negative: a job not stored yet
	}
	return appendPlaceholder(b, placeholder{Job: job, Path: path}), nil
}

// UnmarshalJSON reads a resolved value, or a placeholder.
func (p *Promise[T]) UnmarshalJSON(b []byte) error {
	if ph, ok := parsePlaceholder(b); ok {
		*p = Promise[T]{ref: &promiseRef{id: jobstore.JobID(ph.Job), path: ph.Path}}
		return nil
	}
	*p = Promise[T]{ok: true}
	return json.Unmarshal(b, &p.val)
}

func (p Promise[T]) encode() ([]byte, error) { return p.MarshalJSON() }

func parsePlaceholder(b []byte) (placeholder, bool) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' || !bytes.Contains(b, promiseMarker) {
		return placeholder{}, false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil || len(m) != 1 {
		return placeholder{}, false
	}
	raw, ok := m[placeholderKey]
	if !ok {
		return placeholder{}, false
	}
	var ph placeholder
	if json.Unmarshal(raw, &ph) != nil {
		return placeholder{}, false
	}
	return ph, true
}

func derive[T, U any](p Promise[T], elem any) Promise[U] {
	if p.ok {
		// Navigate the resolved value through its JSON form.
		var out Promise[U]
		b, err := json.Marshal(p.val)
		if err == nil {
			if v, err := navigate(b, []any{elem}); err == nil && json.Unmarshal(v, &out.val) == nil {
				out.ok = true
			}
		}
		return out
	}
	n, id, path, ok := p.target()
	if !ok {
		return Promise[U]{}
	}
	return Promise[U]{ref: &promiseRef{node: n, id: id, path: append(slices.Clip(path), elem)}}
}

// Index is a promise of element i of a promised slice.
func Index[E any](p Promise[[]E], i int) Promise[E] { return derive[[]E, E](p, i) }

// Key is a promise of the value under key in a promised map.
func Key[V any](p Promise[map[string]V], key string) Promise[V] {
	return derive[map[string]V, V](p, key)
}

// Field is a promise of one field of a promised struct, named as it
// appears in the struct's JSON (its json tag, or its Go name):
// Field[string](server.Result(), "Addr").
func Field[F, T any](p Promise[T], name string) Promise[F] { return derive[T, F](p, name) }

// Input is a job's whole input: a Value, a Promise, or a Collect.
type Input[T any] interface {
	encode() ([]byte, error)
}

type valueInput[T any] struct{ v T }

func (v valueInput[T]) encode() ([]byte, error) { return json.Marshal(v.v) }

// Value is an input known now.
func Value[T any](v T) Input[T] { return valueInput[T]{v} }

type collectInput[T any] []Input[T]

// jsonAppender is an Input that appends its JSON to a buffer: a
// Collect of a million promises then makes no garbage per element.
type jsonAppender interface {
	appendJSON(b []byte) ([]byte, error)
}

func (c collectInput[T]) encode() ([]byte, error) {
	b := []byte{'['}
	for i, in := range c {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if a, ok := in.(jsonAppender); ok {
			b, err = a.appendJSON(b)
		} else {
			var e []byte
			e, err = in.encode()
			b = append(b, e...)
		}
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", i, err)
		}
		if i == 0 && len(c) > 1 {
			// Size the buffer once from the first element, rather
			// than doubling it all the way to a fan-in's megabytes.
			b = slices.Grow(b, (len(b)+1)*(len(c)-1)+1)
		}
	}
	return append(b, ']'), nil
}

// Collect gathers inputs, typically promises of many jobs' results, into
// one slice input: the follow-on of a fan-out takes Collect(results...).
func Collect[T any](ins ...Input[T]) Input[[]T] { return collectInput[T](ins) }

// Promises converts promises to inputs, for Collect.
func Promises[T any](ps []Promise[T]) []Input[T] {
	out := make([]Input[T], len(ps))
	for i, p := range ps {
		out[i] = p
	}
	return out
}

// mapPlaceholders replaces every placeholder in JSON b with what fn
// returns for it. It works on the bytes, without decoding b: the input of
// a fan-in job can hold a million promises. A placeholder is an object
// whose only key is placeholderKey; inside a JSON string that key's quotes
// would be escaped, so a match on the raw bytes is always a real key.
// When b holds no placeholder it is returned as is.
func mapPlaceholders(b []byte, fn func(placeholder) ([]byte, error)) ([]byte, error) {
	var out []byte
	last, i := 0, 0
	for {
		k := bytes.Index(b[i:], promiseMarker)
		if k < 0 {
			break
		}
		k += i
		s := k - 1
		for s >= 0 && isSpace(b[s]) {
			s--
		}
		if s < 0 || b[s] != '{' {
			i = k + len(promiseMarker)
			continue
		}
		ph, end, ok, err := parsePlaceholderAt(b, s)
		if err != nil {
			return nil, err
		}
		if !ok {
			i = k + len(promiseMarker)
			continue
		}
		rep, err := fn(ph)
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = make([]byte, 0, len(b))
		}
		out = append(out, b[last:s]...)
		out = append(out, rep...)
		last, i = end, end
	}
	if out == nil {
		return b, nil
	}
	out = append(out, b[last:]...)
	if cap(out) > 2*len(out)+4096 {
		// Sized for b, which a million placeholders can make many times
		// what they resolve to; the result lives as long as the job runs.
		out = bytes.Clone(out)
	}
	return out, nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

var fastPrefix = []byte(`{"` + placeholderKey + `":{"job":`)

// parsePlaceholderAt reads the object starting at b[s]. ok is false when
// the object is not a placeholder (it has other keys).
func parsePlaceholderAt(b []byte, s int) (ph placeholder, end int, ok bool, err error) {
	// Fast path: the form placeholderJSON writes, with no path.
	if rest := b[s:]; bytes.HasPrefix(rest, fastPrefix) {
		j := len(fastPrefix)
		n := j
		if n < len(rest) && rest[n] == '-' {
			n++
		}
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n+1 < len(rest) && rest[n] == '}' && rest[n+1] == '}' {
			id, perr := strconv.ParseInt(string(rest[j:n]), 10, 64)
			if perr == nil {
				return placeholder{Job: id}, s + n + 2, true, nil
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b[s:]))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return ph, 0, false, fmt.Errorf("malformed promise placeholder: %w", err)
	}
	raw, found := m[placeholderKey]
	if !found || len(m) != 1 {
		return ph, 0, false, nil
	}
	ph, err = toPlaceholder(raw)
	return ph, s + int(dec.InputOffset()), err == nil, err
}

func toPlaceholder(raw any) (placeholder, error) {
	m, ok := raw.(map[string]any)
	if !ok {
		return placeholder{}, fmt.Errorf("malformed promise placeholder %v", raw)
	}
	var ph placeholder
	n, ok := m["job"].(json.Number)
	if !ok {
		return ph, fmt.Errorf("malformed promise placeholder %v", raw)
	}
	id, err := n.Int64()
	if err != nil {
		return ph, fmt.Errorf("malformed promise placeholder %v", raw)
	}
	ph.Job = id
	rawPath, hasPath := m["path"]
	p, ok := rawPath.([]any)
	if hasPath && !ok {
		return ph, fmt.Errorf("malformed promise placeholder: path %v is not a list", rawPath)
	}
	if ok {
		for _, e := range p {
			switch x := e.(type) {
			case string:
				ph.Path = append(ph.Path, x)
			case json.Number:
				i, err := x.Int64()
				if err != nil {
					return ph, fmt.Errorf("malformed promise path element %v", x)
				}
				ph.Path = append(ph.Path, int(i))
			default:
				return ph, fmt.Errorf("malformed promise path element %v", e)
			}
		}
	}
	return ph, nil
}

// placeholderJSON writes a placeholder without reflection: a fan-in
// input holds one per promised job.
func placeholderJSON(ph placeholder) []byte {
	return appendPlaceholder(make([]byte, 0, len(fastPrefix)+24), ph)
}

// appendPlaceholder appends placeholderJSON(ph) to b.
func appendPlaceholder(b []byte, ph placeholder) []byte {
	b = append(b, fastPrefix...)
	b = strconv.AppendInt(b, ph.Job, 10)
	if len(ph.Path) > 0 {
		p, _ := json.Marshal(ph.Path)
		b = append(b, `,"path":`...)
		b = append(b, p...)
	}
	return append(b, '}', '}')
}

// navigate returns the part of JSON value b at path.
func navigate(b []byte, path []any) ([]byte, error) {
	if len(path) == 0 {
		return b, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	for i, e := range path {
		if m, ok := v.(map[string]any); ok {
			if _, isPh := m[placeholderKey]; isPh && len(m) == 1 {
				// The value is itself a promise: hand back a narrower one.
				ph, err := toPlaceholder(m[placeholderKey])
				if err != nil {
					return nil, err
				}
				ph.Path = append(ph.Path, path[i:]...)
				return placeholderJSON(ph), nil
			}
		}
		switch k := e.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("path element %q: value is not an object", k)
			}
			if v, ok = m[k]; !ok {
				return nil, fmt.Errorf("path element %q: no such field or key", k)
			}
		case int:
			a, ok := v.([]any)
			if !ok {
				return nil, fmt.Errorf("path element %d: value is not an array", k)
			}
			if k < 0 || k >= len(a) {
				return nil, fmt.Errorf("path element %d: index out of range [0,%d)", k, len(a))
			}
			v = a[k]
		default:
			return nil, fmt.Errorf("path element %v: not a key or an index", e)
		}
	}
	return json.Marshal(v)
}

func pathString(p []any) string {
	var b []byte
	for _, e := range p {
		switch k := e.(type) {
		case int:
			b = append(b, '[')
			b = strconv.AppendInt(b, int64(k), 10)
			b = append(b, ']')
		default:
			b = fmt.Appendf(b, ".%v", k)
		}
	}
	return string(b)
}

// resolve replaces every promise in b by the value it promises.
// finished, if not nil, tells whether a job has finished for good (its
// record is gone): a finished job's missing result is a damaged store,
// not a promise made too early.
func resolve(tx jobstore.ReadTx, b []byte, depth int, finished func(JobID) bool) ([]byte, error) {
	return mapPlaceholders(b, func(ph placeholder) ([]byte, error) {
		if depth > 64 {
			return nil, fmt.Errorf("%w: promise chain deeper than 64 (a job forwards to itself?)", ErrUnfulfilledPromise)
		}
		if ph.Job <= 0 {
			return nil, fmt.Errorf("%w: promise of unsaved job #%d", ErrUnfulfilledPromise, -ph.Job)
		}
		v, err := resultView(tx, JobID(ph.Job)) // copied into the output
		if errors.Is(err, jobstore.ErrNotFound) && finished != nil && finished(JobID(ph.Job)) {
			return nil, fmt.Errorf("%w: the result of job %s, which has finished, is missing", jobstore.ErrCorrupt, JobID(ph.Job))
		}
		if errors.Is(err, jobstore.ErrNotFound) {
			return nil, fmt.Errorf("%w: job %s has not finished; make the job that reads its result run after it (a child or follow-on)", ErrUnfulfilledPromise, JobID(ph.Job))
		}
		if err != nil {
			return nil, err
		}
		if v, err = navigate(v, ph.Path); err != nil {
			return nil, fmt.Errorf("%w: result of job %s at %s: %w", ErrUnfulfilledPromise, JobID(ph.Job), pathString(ph.Path), err)
		}
		if hasPromises(v) {
			return resolve(tx, v, depth+1, finished)
		}
		return v, nil
	})
}

// resultView reads a result through tx's Viewer, if it has one: resolve
// copies what it reads into its output, so a fan-in's million results
// need not be copied twice.
func resultView(tx jobstore.ReadTx, id JobID) ([]byte, error) {
	if v, ok := tx.(jobstore.Viewer); ok {
		return v.ResultView(id)
	}
	return tx.Result(id)
}

// resolveInput reads job id's input and resolves its promises. Through
// a Viewer, the stored input is read in place: resolving makes a new one.
func resolveInput(tx jobstore.ReadTx, id JobID, finished func(JobID) bool) ([]byte, error) {
	v, ok := tx.(jobstore.Viewer)
	if !ok {
		in, err := tx.Input(id)
		if err != nil && !errors.Is(err, jobstore.ErrNotFound) {
			return nil, err
		}
		return resolve(tx, in, 0, finished)
	}
	in, err := v.InputView(id)
	if errors.Is(err, jobstore.ErrNotFound) {
		return nil, nil // as an input without promises would be
	}
	if err != nil {
		return nil, err
	}
	out, err := resolve(tx, in, 0, finished)
	if err == nil && len(out) > 0 && &out[0] == &in[0] {
		out = bytes.Clone(out) // nothing was resolved: it is the view
	}
	return out, err
}
