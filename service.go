package gaffer

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"time"

	"github.com/gafferhq/gaffer/services"
)

// A service type is a constructor of services.Service registered under a
// stable name, as a job type is. Its jobs are added to a client job with
// AddService; the client's children and follow-ons take the service's
// Value (what Start returned) as a promise:
//
//	var KV = gaffer.MustRegisterService("example.kv",
//		func(ctx context.Context, jc *gaffer.JobContext, in KVConfig) (services.Service[string], error) {
//			return newKVServer(in), nil
//		})
//
//	func client(ctx context.Context, jc *gaffer.JobContext, in Work) (int, error) {
//		kv := KV.New(KVConfig{})
//		jc.AddService(kv)
//		jc.AddChild(UseKV.NewFrom(gaffer.Promises(kv.Result())))
//		...
//	}
//
// See package services for the life of a service and its caveats.
type ServiceType[In, Out any] struct {
	name     string
	template *node
}

// ServiceFunc makes the service a job of a service type runs. It is
// called in the worker that hosts the service, before Start.
type ServiceFunc[In, Out any] func(ctx context.Context, jc *JobContext, in In) (services.Service[Out], error)

// hostFunc runs a service through its life with JSON input; started
// receives Start's value, encoded.
type hostFunc func(ctx context.Context, jc *JobContext, input []byte, started func([]byte) error, stop <-chan struct{}, opts services.Options) error

// RegisterService registers fn as the service type called name, in the
// same namespace as job types. opts set defaults for every service of the
// type (requirements, retries; a service is retried only until it has
// started). It fails as Register does.
func RegisterService[In, Out any](name string, fn ServiceFunc[In, Out], opts ...JobOption) (*ServiceType[In, Out], error) {
	if fn == nil {
		return nil, fmt.Errorf("gaffer: register service %q: nil function", name)
	}
	template, err := newTemplate(name, []reflect.Type{reflect.TypeFor[In](), reflect.TypeFor[Out]()}, opts)
	if err != nil {
		return nil, err
	}
	template.service = true
	host := func(ctx context.Context, jc *JobContext, input []byte, started func([]byte) error, stop <-chan struct{}, o services.Options) error {
		var in In
		if err := json.Unmarshal(input, &in); err != nil {
			return &permanentError{fmt.Errorf("%w: service %s: decoding input as %v: %w", ErrBadInput, jc.display(), reflect.TypeFor[In](), err)}
		}
		s, err := fn(ctx, jc, in)
		if err != nil {
			return err
		}
		if s == nil {
			return &permanentError{fmt.Errorf("service %s: the service function returned no service", jc.display())}
		}
		return services.Run(ctx, s, func(v Out) error {
			b, err := json.Marshal(v)
			if err != nil {
				return &permanentError{fmt.Errorf("%w: service %s: encoding the start value: %w", ErrBadInput, jc.display(), err)}
			}
			return started(b)
		}, stop, o)
	}
	if err := addRegistration(&registration{name: name, host: host}); err != nil {
		return nil, err
	}
	return &ServiceType[In, Out]{name: name, template: template}, nil
}

// MustRegisterService is RegisterService for package-level variables.
func MustRegisterService[In, Out any](name string, fn ServiceFunc[In, Out], opts ...JobOption) *ServiceType[In, Out] {
	t, err := RegisterService(name, fn, opts...)
	if err != nil {
		panic(err)
	}
	return t
}

// Name returns the type's registered name.
func (t *ServiceType[In, Out]) Name() string { return t.name }

// New makes a service of this type with input in, to be added to a
// client with AddService.
func (t *ServiceType[In, Out]) New(in In, opts ...JobOption) *Service[Out] {
	n := newNode(t.template, opts)
	b, err := encodeInput(in)
	n.setInput(b, err, "service", t.name)
	return &Service[Out]{n: n}
}

// NewFrom makes a service whose whole input is an Input (a promise of a
// result of the client or of a job before it, for example).
func (t *ServiceType[In, Out]) NewFrom(in Input[In], opts ...JobOption) *Service[Out] {
	n := newNode(t.template, opts)
	b, err := in.encode()
	n.setInput(b, err, "service", t.name)
	return &Service[Out]{n: n}
}

// Service is a handle on a service being added to a workflow.
type Service[Out any] struct {
	n *node
}

// ServiceNode is any service handle, whatever its value's type.
type ServiceNode interface {
	serviceNode() *node
}

func (s *Service[Out]) serviceNode() *node { return s.n }

// Result is a promise of what the service's Start returns, for the input
// of the client's children and follow-ons (and their successors), which
// run only once it has started.
func (s *Service[Out]) Result() Promise[Out] { return Promise[Out]{node: s.n} }

// AddChildService makes c a service of the same client that starts only
// once s has started (c's input may take s.Result()).
func (s *Service[Out]) AddChildService(c ServiceNode) { s.n.addService(c.serviceNode(), true) }

// AddService gives the job a service: it starts after the job's body and
// before its children, and stops after its children and follow-ons.
func (j *Job[Out]) AddService(s ServiceNode) { j.n.addService(s.serviceNode(), false) }

// AddService gives the running job a service: it starts once the body
// returns and before the job's children, and stops after its children
// and follow-ons have finished.
func (jc *JobContext) AddService(s ServiceNode) { jc.selfNode().addService(s.serviceNode(), false) }

// collectStarts takes the starts services reported since the last look:
// the graph stores each value (the promise their users read) and lets
// the clients whose services have all started run their successors.
func (l *Leader) collectStarts(ctx context.Context) error {
	if l.g.services == 0 {
		return nil
	}
	var dones []func()
	for _, tr := range l.transports() {
		reports, done := tr.starts()
		dones = append(dones, done)
		for _, r := range reports {
			if l.g.serviceReport(r) {
				l.log.Debug("service started", "job_id", r.Job.String())
			}
		}
		if len(reports) > 0 {
			l.lastProgress = time.Now()
		}
	}
	return l.apply(ctx, dones...)
}
