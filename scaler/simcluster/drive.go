package simcluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/scaler"
)

// Stepper is one scaling pass; *scaler.ClusterScaler is one.
type Stepper interface {
	Step(ctx context.Context) (*scaler.Report, error)
}

// DriveOptions tunes Drive.
type DriveOptions struct {
	// Interval is the virtual time between scaler passes; 0 means
	// scaler.DefaultScaleInterval.
	Interval time.Duration
	// Limit is how much virtual time Drive may spend; 0 means 30 days.
	Limit time.Duration
	// OnFinished, if set, sees every reported job.
	OnFinished func(batchsystem.FinishedJob)
	// OnStep, if set, sees every pass; a non-nil result stops Drive with
	// that error. nil means stop on the first pass that fails.
	OnStep func(*scaler.Report, error) error
}

// ErrLimit is matched by the error from Drive when the limit passes with
// jobs still issued or nodes still up.
var ErrLimit = errors.New("simcluster: virtual time limit reached")

// Drive plays the leader's loop without a leader: it waits for jobs in
// virtual time and runs a scaler pass now and every Interval, until no job
// is issued and no node is left but the static ones.
func (c *Cluster) Drive(ctx context.Context, s Stepper, opt DriveOptions) error {
	if opt.Interval <= 0 {
		opt.Interval = scaler.DefaultScaleInterval
	}
	if opt.Limit <= 0 {
		opt.Limit = 30 * 24 * time.Hour
	}
	if opt.OnStep == nil {
		opt.OnStep = func(_ *scaler.Report, err error) error { return err }
	}
	start := c.Now()
	next := start
	for {
		now := c.Now()
		if !now.Before(next) {
			rep, err := s.Step(ctx)
			if err := opt.OnStep(rep, err); err != nil {
				return fmt.Errorf("simcluster: scaler pass at %s: %w", now.Sub(start), err)
			}
			next = now.Add(opt.Interval)
		}
		jobs, nodes := c.left()
		if jobs == 0 && nodes == 0 {
			return nil
		}
		if now.Sub(start) >= opt.Limit {
			return fmt.Errorf("%w after %s: %d job(s) issued, %d node(s) up", ErrLimit, opt.Limit, jobs, nodes)
		}
		f, err := c.WaitFinished(ctx, next.Sub(now))
		if err != nil {
			return err
		}
		if f != nil && opt.OnFinished != nil {
			opt.OnFinished(*f)
		}
	}
}

// left counts issued jobs and non-static nodes.
func (c *Cluster) left() (jobs, nodes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, nd := range c.nodes {
		if !c.static[nd.id] {
			nodes++
		}
	}
	return len(c.jobs), nodes
}
