package gaffer

import (
	"bytes"
	"context"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
)

// A job type is a Go function registered under a stable name. The name,
// not the function, is what the job store records and what a worker
// process looks up, so it must not change between the leader and its
// workers, or across a restart.
//
// Register job types at package level (in var declarations or init), so
// that every process started from the binary, leader or worker, has them
// before main runs:
//
//	var Square = gaffer.MustRegister("example.square",
//		func(ctx context.Context, jc *gaffer.JobContext, x int) (int, error) {
//			return x * x, nil
//		})
type JobType[In, Out any] struct {
	name     string
	template *node // the type's options applied; jobs start as copies of it
}

// JobFunc is the body of a job of type In → Out. ctx is cancelled when the
// job is killed or the leader stops.
type JobFunc[In, Out any] func(ctx context.Context, jc *JobContext, in In) (Out, error)

// runFunc is a job body with its input and output in JSON.
type runFunc func(ctx context.Context, jc *JobContext, input []byte) ([]byte, error)

// registration is a job type (run set) or a service type (host set).
type registration struct {
	name string
	run  runFunc
	host hostFunc
}

var registry = struct {
	sync.RWMutex
	m map[string]*registration
}{m: map[string]*registration{}}

func lookupType(name string) (*registration, bool) {
	registry.RLock()
	defer registry.RUnlock()
	r, ok := registry.m[name]
	return r, ok
}

// Register registers fn as the job type called name. opts set defaults
// (requirements, retries) for every job of the type. It fails if the name
// is taken or if In or Out cannot be JSON-encoded (channels, functions,
// complex numbers, maps with unsupported keys).
func Register[In, Out any](name string, fn JobFunc[In, Out], opts ...JobOption) (*JobType[In, Out], error) {
	if fn == nil {
		return nil, fmt.Errorf("gaffer: register %q: nil function", name)
	}
	template, err := newTemplate(name, []reflect.Type{reflect.TypeFor[In](), reflect.TypeFor[Out]()}, opts)
	if err != nil {
		return nil, err
	}
	run := func(ctx context.Context, jc *JobContext, input []byte) ([]byte, error) {
		var in In
		if err := json.Unmarshal(input, &in); err != nil {
			return nil, &permanentError{fmt.Errorf("%w: job %s: decoding input as %v: %w", ErrBadInput, jc.display(), reflect.TypeFor[In](), err)}
		}
		out, err := fn(ctx, jc, in)
		if err != nil {
			return nil, err
		}
		if fwd := jc.takeForward(); fwd != nil {
			return fwd, nil
		}
		b, err := json.Marshal(out)
		if err != nil {
			return nil, &permanentError{fmt.Errorf("%w: job %s: encoding result: %w", ErrBadInput, jc.display(), err)}
		}
		return b, nil
	}
	if err := addRegistration(&registration{name: name, run: run}); err != nil {
		return nil, err
	}
	return &JobType[In, Out]{name: name, template: template}, nil
}

// newTemplate checks a type's name and its input and output types, and
// applies its options once, to the template every job of the type starts
// from: a bad option fails here rather than at every New.
func newTemplate(name string, types []reflect.Type, opts []JobOption) (*node, error) {
	if name == "" {
		return nil, fmt.Errorf("gaffer: register: empty type name")
	}
	for _, t := range types {
		if err := checkEncodable(t, map[reflect.Type]bool{}); err != nil {
			return nil, fmt.Errorf("%w: type %q: %w", ErrNotEncodable, name, err)
		}
	}
	template := &node{nodeSpec: &nodeSpec{kind: name, req: &Requirements{}, retries: -1}}
	for _, o := range opts {
		if o.set == nil {
			continue
		}
		if err := o.set(template); err != nil {
			return nil, fmt.Errorf("gaffer: register %q: %w", name, err)
		}
	}
	return template, nil
}

func addRegistration(r *registration) error {
	registry.Lock()
	defer registry.Unlock()
	if _, taken := registry.m[r.name]; taken {
		return fmt.Errorf("%w: %q", ErrJobTypeTaken, r.name)
	}
	registry.m[r.name] = r
	return nil
}

// MustRegister is Register for package-level variables: it panics on
// error, at program start, before any leader runs.
func MustRegister[In, Out any](name string, fn JobFunc[In, Out], opts ...JobOption) *JobType[In, Out] {
	t, err := Register(name, fn, opts...)
	if err != nil {
		panic(err)
	}
	return t
}

// Name returns the type's registered name.
func (t *JobType[In, Out]) Name() string { return t.name }

// New makes a job of this type with input in. The job runs only once it
// is added to a graph: as the root given to Leader.Run, or as a child or
// follow-on of a job that is. in may hold promises (Promise fields); they
// are resolved before the job runs.
func (t *JobType[In, Out]) New(in In, opts ...JobOption) *Job[Out] {
	n := newNode(t.template, opts)
	b, err := encodeInput(in)
	n.setInput(b, err, "job", t.name)
	return &Job[Out]{n: n}
}

// NewFrom makes a job whose whole input is an Input: a Value, a Promise of
// another job's result, or a Collect of several.
func (t *JobType[In, Out]) NewFrom(in Input[In], opts ...JobOption) *Job[Out] {
	n := newNode(t.template, opts)
	b, err := in.encode()
	n.setInput(b, err, "job", t.name)
	return &Job[Out]{n: n}
}

var promiseMarker = []byte(`"` + placeholderKey + `"`)

func hasPromises(b []byte) bool { return bytes.Contains(b, promiseMarker) }

func encodeInput(v any) ([]byte, error) { return json.Marshal(v) }

var textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
var jsonMarshaler = reflect.TypeFor[json.Marshaler]()

// checkEncodable rejects types encoding/json cannot round-trip.
func checkEncodable(t reflect.Type, seen map[reflect.Type]bool) error {
	if seen[t] {
		return nil
	}
	seen[t] = true
	// Only a MarshalJSON on the value counts: values are encoded by
	// value, and encoding/json ignores a method on *T for them.
	if t.Implements(jsonMarshaler) {
		return nil
	}
	switch t.Kind() {
	case reflect.Chan, reflect.Func, reflect.Complex64, reflect.Complex128, reflect.UnsafePointer:
		return fmt.Errorf("%v is a %v", t, t.Kind())
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return checkEncodable(t.Elem(), seen)
	case reflect.Map:
		k := t.Key()
		switch {
		case k.Kind() == reflect.String, k.Kind() >= reflect.Int && k.Kind() <= reflect.Uintptr,
			k.Implements(textMarshaler), reflect.PointerTo(k).Implements(textMarshaler):
		default:
			return fmt.Errorf("%v has keys of type %v, which JSON cannot hold", t, k)
		}
		return checkEncodable(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Tag.Get("json") == "-" {
				continue
			}
			if !f.IsExported() {
				// encoding/json promotes the exported fields of an embedded
				// unexported struct; other unexported fields it skips.
				ft := f.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if !f.Anonymous || ft.Kind() != reflect.Struct {
					continue
				}
			}
			if err := checkEncodable(f.Type, seen); err != nil {
				return fmt.Errorf("field %s.%s: %w", t, f.Name, err)
			}
		}
	}
	return nil
}

// permanentError marks a failure that retrying cannot fix (bad input, an
// invalid graph, an unknown job type): the job fails totally at once.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }
