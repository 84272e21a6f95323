package services

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Options tune Run. The zero value means the defaults.
type Options struct {
	// PollInterval is how often a running service is checked (if it is a
	// Checker) and, through StopRequested, asked whether to stop. 0 means
	// 1 s.
	PollInterval time.Duration
	// StopTimeout bounds Stop. 0 means 30 s.
	StopTimeout time.Duration
	// StopRequested, if set, is polled every PollInterval; true stops the
	// service as a closed stop channel does. Hosts in other processes use
	// it to watch for a flag file.
	StopRequested func() bool
}

// ErrEndedEarly is returned when a Checker reports the service failed.
var ErrEndedEarly = errors.New("services: the service failed while running")

// Run takes s through its life: Start, then started(value), then checks
// until stop is closed (or StopRequested says so), then Stop. It returns
// nil only if the service started, ran until told to stop, and stopped
// cleanly.
//
// If ctx is cancelled (the host was killed), Run stops the service and
// returns ctx's error: a killed service did not end well, whatever Stop
// says. An error from started (the value could not be reported) also
// stops the service and is returned.
func Run[Out any](ctx context.Context, s Service[Out], started func(Out) error, stop <-chan struct{}, opts Options) (err error) {
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = 30 * time.Second
	}
	defer func() {
		// Stop runs whatever happened, on a context of its own: the
		// host's may be cancelled already.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.StopTimeout)
		defer cancel()
		if serr := s.Stop(sctx); serr != nil {
			err = errors.Join(err, fmt.Errorf("stop: %w", serr))
		}
		if err == nil && ctx.Err() != nil {
			err = ctx.Err()
		}
	}()
	v, err := s.Start(ctx)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	if err := started(v); err != nil {
		return fmt.Errorf("reporting the start: %w", err)
	}
	checker, _ := s.(Checker)
	t := time.NewTicker(opts.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if opts.StopRequested != nil && opts.StopRequested() {
			return nil
		}
		if checker != nil {
			if err := checker.Check(ctx); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("%w: check: %w", ErrEndedEarly, err)
			}
		}
	}
}
