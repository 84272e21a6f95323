package scaler

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func types(ts ...NodeType) []NodeType { return ts }

func nt(name string, cores float64, mem int64, pre bool) NodeType {
	s := node(cores, mem)
	s.Preemptible = pre
	return NodeType{Name: name, Shape: s, PricePerHour: 1}
}

func estimate(t *testing.T, e *Estimator, groups ...JobGroup) Estimate {
	t.Helper()
	est, err := e.Estimate(context.Background(), groups)
	require.NoError(t, err)
	return est
}

func desired(est Estimate) []int {
	var out []int
	for _, te := range est.Types {
		out = append(out, te.Desired)
	}
	return out
}

func TestEstimatorSmoothsWithInertiaBothWays(t *testing.T) {
	e, err := NewEstimator(types(nt("n", 1, 8*gb, false)), Config{BetaInertia: 0.5, AssumeZeroOverhead: true, DefaultMaxNodes: 100})
	require.NoError(t, err)
	ten := JobGroup{Shape: job(time.Hour, 1, gb), Count: 10}
	// 10 one-hour jobs on 1-core nodes within a tiny target need 10 nodes.
	// Smoothing starts from 0: 5, then 7.5 -> 8 (half away from zero), 8.75 -> 9.
	require.Equal(t, []int{5}, desired(estimate(t, e, ten)))
	require.Equal(t, []int{8}, desired(estimate(t, e, ten)))
	require.Equal(t, []int{9}, desired(estimate(t, e, ten)))
	// No jobs: the estimate decays, 4.375 -> 4.
	est := estimate(t, e)
	require.Equal(t, 0, est.Types[0].Packed)
	require.Equal(t, 4, est.Types[0].Desired)
	require.Contains(t, est.Types[0].Reason, "inertia")
}

func TestEstimatorClampsToMinAndMax(t *testing.T) {
	e, err := NewEstimator(types(nt("a", 1, 8*gb, false), nt("b", 4, 32*gb, false)), Config{
		BetaInertia: -1, AssumeZeroOverhead: true,
		MinNodes: map[string]int{"b": 2}, MaxNodes: map[string]int{"a": 3},
	})
	require.NoError(t, err)
	est := estimate(t, e, JobGroup{Shape: job(time.Hour, 1, gb), Count: 10})
	require.Equal(t, []int{3, 2}, desired(est))
	require.Equal(t, 10, est.Types[0].Packed)
	require.Contains(t, est.Types[0].Reason, "max 3")
	require.Contains(t, est.Types[1].Reason, "min 2")
}

func TestEstimatorCompensatesPreemptibleDeficitOnTheOnDemandTwin(t *testing.T) {
	e, err := NewEstimator(types(nt("spot", 2, 8*gb, true), nt("demand", 2, 8*gb, false), nt("other", 4, 8*gb, false)),
		Config{BetaInertia: -1, AssumeZeroOverhead: true, PreemptibleCompensation: 0.5})
	require.NoError(t, err)
	e.SetDeficit(0, 5)
	e.SetDeficit(1, 7) // ignored: not preemptible
	est := estimate(t, e)
	require.Equal(t, 3, est.Types[1].Compensation, "round(5 * 0.5) = 3, half away from zero")
	require.Equal(t, []int{0, 3, 0}, desired(est))
	require.Equal(t, 0, est.Types[2].Compensation, "only the type with the same shape compensates")
}

func TestEstimatorReportsUnfittableJobsWithEveryTypesReason(t *testing.T) {
	e, err := NewEstimator(types(nt("spot", 64, 256*gb, true), nt("small", 2, 8*gb, false)), Config{})
	require.NoError(t, err)
	est := estimate(t, e,
		JobGroup{Shape: Shape{WallTime: time.Minute, Memory: 100 * gb, Cores: 1}, Count: 2, Kinds: []string{"assemble"}},
		JobGroup{Shape: Shape{WallTime: time.Minute, Memory: gb, Cores: 1}, Count: 1})
	require.Equal(t, 1, est.Jobs)
	require.Len(t, est.Unfittable, 1)
	r := est.Unfittable[0]
	require.Equal(t, 2, r.Count)
	require.Equal(t, "spot", r.Types[0].Type)
	require.Equal(t, "preemptible", r.Types[0].Failed[0].Resource)
	require.Equal(t, "memory", r.Types[1].Failed[0].Resource)
	msg := (&UnfittableError{est.Unfittable}).Error()
	require.Contains(t, msg, "assemble")
	require.Contains(t, msg, "small (memory")
	require.True(t, errors.Is(&UnfittableError{}, ErrUnfittable))
}

func TestEstimatorRejectsBadInput(t *testing.T) {
	for name, c := range map[string]struct {
		types []NodeType
		cfg   Config
		want  error
	}{
		"zero cores":       {types(nt("a", 0, gb, false)), Config{}, ErrBadNodeType},
		"zero memory":      {types(nt("a", 1, 0, false)), Config{}, ErrBadNodeType},
		"no name":          {types(nt("", 1, gb, false)), Config{}, ErrBadNodeType},
		"duplicate":        {types(nt("a", 1, gb, false), nt("a", 2, gb, false)), Config{}, ErrBadNodeType},
		"no types":         {nil, Config{}, ErrBadConfig},
		"inertia too high": {types(nt("a", 1, gb, false)), Config{BetaInertia: 0.95}, ErrBadConfig},
		"compensation":     {types(nt("a", 1, gb, false)), Config{PreemptibleCompensation: 2}, ErrBadConfig},
		"min above max":    {types(nt("a", 1, gb, false)), Config{MinNodes: map[string]int{"a": 11}}, ErrBadConfig},
		"all max zero":     {types(nt("a", 1, gb, false)), Config{MaxNodes: map[string]int{"a": 0}}, ErrBadConfig},
		"unknown type":     {types(nt("a", 1, gb, false)), Config{MaxNodes: map[string]int{"b": 1}}, ErrBadConfig},
	} {
		_, err := NewEstimator(c.types, c.cfg)
		require.ErrorIs(t, err, c.want, name)
	}
}

type countingPacker struct{ calls int }

func (p *countingPacker) Pack(_ context.Context, nodes []Shape, jobs []ShapeCount, _ time.Duration) ([]int, error) {
	p.calls++
	out := make([]int, len(nodes))
	for _, j := range jobs {
		out[0] += j.Count
	}
	return out, nil
}

func TestEstimatorUsesAGivenPacker(t *testing.T) {
	p := &countingPacker{}
	e, err := NewEstimator(types(nt("a", 1, 8*gb, false)), Config{Packer: p, BetaInertia: -1, DefaultMaxNodes: 50})
	require.NoError(t, err)
	est := estimate(t, e, JobGroup{Shape: job(time.Second, 1, gb), Count: 42})
	require.Equal(t, 1, p.calls)
	require.Equal(t, []int{42}, desired(est))
}
