package scaler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"
)

// Toil's defaults, used for zero Config fields.
const (
	DefaultTargetTime    = 30 * time.Minute
	DefaultBetaInertia   = 0.1
	DefaultScaleInterval = time.Minute
	DefaultMaxNodes      = 10
	DefaultRuntime       = time.Second
)

// Config tunes a ClusterScaler. The zero value is Toil's defaults.
type Config struct {
	// TargetTime is how long a queued job may wait for a node before it
	// starts: the packer may queue jobs one after another on a node as
	// long as each starts within it. Shorter means more nodes. 0 means
	// DefaultTargetTime (Toil's 1800 s).
	TargetTime time.Duration
	// BetaInertia smooths the estimate: the count asked for is
	// (1-β)·packed + β·previous. It must be at most 0.9. 0 means
	// DefaultBetaInertia; a negative value means no smoothing.
	BetaInertia float64
	// ScaleInterval is the time between two passes of Run. 0 means
	// DefaultScaleInterval.
	ScaleInterval time.Duration
	// PreemptibleCompensation, in [0, 1], is the share of preemptible
	// nodes the provisioner failed to deliver that are asked for as
	// non-preemptible nodes of the same shape instead. 0 means none.
	PreemptibleCompensation float64
	// MinNodes and MaxNodes bound the count per node type name. A type
	// missing from MinNodes has no minimum; one missing from MaxNodes has
	// DefaultMaxNodes as its maximum (0 means DefaultMaxNodes).
	MinNodes        map[string]int
	MaxNodes        map[string]int
	DefaultMaxNodes int
	// AssumeZeroOverhead packs jobs onto the whole of each node instead of
	// what is left after ReserveOverhead.
	AssumeZeroOverhead bool
	// DefaultRuntime is the runtime assumed for every job before any job
	// has completed. 0 means DefaultRuntime (Toil's 1 s).
	DefaultRuntime time.Duration
	// Drainer keeps new jobs off nodes chosen for removal. nil means the
	// Provisioner, if it implements Drainer; otherwise nodes are not
	// drained (see the package caveats).
	Drainer Drainer
	// Now is the clock used for billing intervals. nil means time.Now; a
	// simulation passes its virtual clock.
	Now func() time.Time
	// Packer replaces BinPack, to compare against another implementation.
	// nil means BinPack.
	Packer Packer
	// Logger receives what the scaler decides; nil means silence.
	Logger *slog.Logger
}

// Packer computes node counts for jobs, as BinPack does. Every job given
// to it fits at least one node shape.
type Packer interface {
	Pack(ctx context.Context, nodes []Shape, jobs []ShapeCount, targetTime time.Duration) ([]int, error)
}

// ErrBadConfig is matched by errors about an invalid Config.
var ErrBadConfig = errors.New("scaler: bad config")

func (c Config) withDefaults() Config {
	if c.TargetTime == 0 {
		c.TargetTime = DefaultTargetTime
	}
	switch {
	case c.BetaInertia == 0:
		c.BetaInertia = DefaultBetaInertia
	case c.BetaInertia < 0:
		c.BetaInertia = 0
	}
	if c.ScaleInterval == 0 {
		c.ScaleInterval = DefaultScaleInterval
	}
	if c.DefaultMaxNodes == 0 {
		c.DefaultMaxNodes = DefaultMaxNodes
	}
	if c.DefaultRuntime == 0 {
		c.DefaultRuntime = DefaultRuntime
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// validate checks c (after withDefaults) against the node types.
func (c Config) validate(types []NodeType) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadConfig, fmt.Sprintf(format, a...))
	}
	switch {
	case c.TargetTime < 0:
		return bad("target time %s is negative", c.TargetTime)
	case c.BetaInertia > 0.9 || math.IsNaN(c.BetaInertia):
		return bad("beta inertia %g is above 0.9", c.BetaInertia)
	case c.ScaleInterval < 0:
		return bad("scale interval %s is negative", c.ScaleInterval)
	case !(c.PreemptibleCompensation >= 0 && c.PreemptibleCompensation <= 1):
		return bad("preemptible compensation %g is outside [0, 1]", c.PreemptibleCompensation)
	case c.DefaultMaxNodes < 0:
		return bad("default max nodes %d is negative", c.DefaultMaxNodes)
	case c.DefaultRuntime < 0:
		return bad("default runtime %s is negative", c.DefaultRuntime)
	case len(types) == 0:
		return bad("the provisioner has no node types")
	}
	known := map[string]bool{}
	for _, t := range types {
		if err := t.Validate(); err != nil {
			return err
		}
		if known[t.Name] {
			return fmt.Errorf("%w %q: listed twice", ErrBadNodeType, t.Name)
		}
		known[t.Name] = true
	}
	total := 0
	for _, t := range types {
		lo, hi := c.limits(t.Name)
		if lo < 0 || hi < 0 || lo > hi {
			return bad("node type %q: min %d and max %d nodes must satisfy 0 <= min <= max", t.Name, lo, hi)
		}
		total += hi
	}
	for _, m := range []map[string]int{c.MinNodes, c.MaxNodes} {
		for name := range m {
			if !known[name] {
				return bad("min/max nodes given for %q, which is not a node type of the provisioner", name)
			}
		}
	}
	if total == 0 {
		return bad("every node type has a maximum of 0 nodes: nothing to scale")
	}
	return nil
}

func (c Config) limits(name string) (lo, hi int) {
	hi, ok := c.MaxNodes[name]
	if !ok {
		hi = c.DefaultMaxNodes
	}
	return c.MinNodes[name], hi
}
