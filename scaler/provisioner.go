package scaler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// NodeType is a kind of machine a Provisioner can start.
type NodeType struct {
	// Name identifies the type, e.g. "c5.4xlarge" or "c5.4xlarge-spot".
	// Names are unique within a Provisioner: a preemptible and an
	// on-demand flavour of one machine are two node types.
	Name string
	// Shape is what one node offers, before overhead. Shape.WallTime is
	// the billing slice the packer reserves a node for; 0 means one hour.
	// Shape.Preemptible marks nodes that may be taken away.
	Shape Shape
	// PricePerHour is the cost of one node for one hour, in any currency;
	// 0 means unknown. It is reported, not used to choose types.
	PricePerHour float64
}

// ErrBadNodeType is matched by errors about a node type that cannot be used.
var ErrBadNodeType = errors.New("scaler: bad node type")

// withDefaults returns t with its special values replaced.
func (t NodeType) withDefaults() NodeType {
	if t.Shape.WallTime == 0 {
		t.Shape.WallTime = time.Hour
	}
	return t
}

// Validate reports what is wrong with t, wrapping ErrBadNodeType.
func (t NodeType) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w %q: %s", ErrBadNodeType, t.Name, fmt.Sprintf(format, a...))
	}
	s := t.Shape
	switch {
	case t.Name == "":
		return bad("no name")
	case !(s.Cores > 0) || math.IsInf(s.Cores, 1):
		return bad("cores must be positive, not %g", s.Cores)
	case s.Memory <= 0:
		return bad("memory must be positive, not %d", s.Memory)
	case s.Disk < 0:
		return bad("disk must not be negative, not %d", s.Disk)
	case s.WallTime < 0:
		return bad("wall time (billing slice) must not be negative, not %s", s.WallTime)
	case t.PricePerHour < 0 || math.IsNaN(t.PricePerHour):
		return bad("price must not be negative, not %g", t.PricePerHour)
	}
	return nil
}

// NodeState is where a node is in its life.
type NodeState int

// Node states. A terminated node is no longer listed.
const (
	NodeStarting NodeState = iota + 1 // asked for, not yet taking jobs
	NodeRunning                       // taking jobs (unless drained)
	NodeStopping                      // termination asked for, not yet gone
)

var stateNames = [...]string{"", "starting", "running", "stopping"}

func (s NodeState) String() string {
	if s > 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("NodeState(%d)", int(s))
}

// Node is one worker node as the provisioner sees it.
type Node struct {
	ID       string    // unique among the provisioner's nodes, ever
	Type     string    // NodeType.Name
	State    NodeState // starting, running or stopping
	Launched time.Time // when AddNodes asked for it; billing starts here
	// Workers is how many jobs are running on the node; -1 means unknown.
	// The scaler never terminates a node unless it reports 0.
	Workers int
}

// Provisioner starts and stops worker nodes: a cloud, a cluster manager, or
// the simulated cluster. Implementations must be safe for concurrent use.
// scaler/provisionertest checks an implementation against this contract.
type Provisioner interface {
	// NodeTypes lists the node types the scaler may add, with their shapes
	// (Toil's getNodeShape). The list does not change over the
	// Provisioner's life.
	NodeTypes(ctx context.Context) ([]NodeType, error)
	// AddNodes asks for n more nodes of the named type and returns how many
	// it got, which may be fewer (no capacity, a quota). n must not be
	// negative; 0 adds nothing. An unknown type is an error wrapping
	// ErrUnknownNodeType.
	AddNodes(ctx context.Context, nodeType string, n int) (int, error)
	// TerminateNodes stops the given nodes; jobs still running on them are
	// lost. Unknown or already terminated IDs are ignored, since a node can
	// vanish on its own (preemption).
	TerminateNodes(ctx context.Context, ids []string) error
	// Nodes lists the provisioner's nodes that are not yet terminated,
	// including those it started on its own (static nodes).
	Nodes(ctx context.Context) ([]Node, error)
}

// ErrUnknownNodeType is matched by the error for a node type name the
// Provisioner does not have.
var ErrUnknownNodeType = errors.New("scaler: unknown node type")

// Drainer stops new jobs from being placed on nodes, so that busy nodes
// can be terminated once their jobs finish. Whatever places jobs on nodes
// implements it (Toil's ignoreNode/unignoreNode on the batch system); the
// simulated cluster does. Draining an unknown node is not an error; a
// Drainer should forget nodes that are terminated.
type Drainer interface {
	Drain(ctx context.Context, ids []string) error
	Undrain(ctx context.Context, ids []string) error
}
