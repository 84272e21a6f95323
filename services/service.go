package services

import "context"

// Service is a long-running helper with a value its users need.
//
// Start and Stop are each called once, from one goroutine. Stop is called
// even if Start failed or the service was killed, so that it can release
// what Start took; it must cope with a service that never came up.
type Service[Out any] interface {
	// Start brings the service up and returns what its users need. It
	// should return once the service accepts requests: users are issued
	// as soon as it returns.
	Start(ctx context.Context) (Out, error)
	// Stop shuts the service down. ctx ends at the stop timeout.
	Stop(ctx context.Context) error
}

// Checker is implemented by services that can tell whether they still
// work. Check is called every poll interval while the service runs; an
// error fails the service (and so its client's subtree).
type Checker interface {
	Check(ctx context.Context) error
}

// Funcs makes a Service of plain functions. StopFunc and CheckFunc may
// be nil: nothing to stop, nothing to check.
type Funcs[Out any] struct {
	StartFunc func(ctx context.Context) (Out, error)
	StopFunc  func(ctx context.Context) error
	CheckFunc func(ctx context.Context) error
}

// Start calls StartFunc.
func (f Funcs[Out]) Start(ctx context.Context) (Out, error) { return f.StartFunc(ctx) }

// Stop calls StopFunc, if set.
func (f Funcs[Out]) Stop(ctx context.Context) error {
	if f.StopFunc == nil {
		return nil
	}
	return f.StopFunc(ctx)
}

// Check calls CheckFunc, if set.
func (f Funcs[Out]) Check(ctx context.Context) error {
	if f.CheckFunc == nil {
		return nil
	}
	return f.CheckFunc(ctx)
}
