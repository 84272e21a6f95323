package local_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/batchsystem/batchsystemtest"
	"github.com/gafferhq/gaffer/batchsystem/local"
)

func TestConformanceInProcess(t *testing.T) {
	batchsystemtest.Run(t, batchsystemtest.Config{New: func(t *testing.T) batchsystem.BatchSystem {
		s, err := local.New(local.Options{Mode: local.InProcess, Cores: 4, Memory: 1 << 30, Disk: 1 << 30})
		require.NoError(t, err)
		return s
	}})
}

func TestConformanceSubprocess(t *testing.T) {
	batchsystemtest.Run(t, batchsystemtest.Config{New: func(t *testing.T) batchsystem.BatchSystem {
		s, err := local.New(local.Options{Mode: local.Subprocess, Cores: 4, Memory: 1 << 30, Disk: 1 << 30})
		require.NoError(t, err)
		return s
	}})
}

func gate() (batchsystem.JobSpec, chan struct{}) {
	release := make(chan struct{})
	return batchsystem.JobSpec{JobID: "g", Run: func(ctx context.Context) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}}, release
}

// A big job that does not fit must not hold back small ones behind it.
func TestNoHeadOfLineBlocking(t *testing.T) {
	ctx := t.Context()
	s, err := local.New(local.Options{Cores: 2, Memory: 1 << 30, Disk: 1 << 30})
	require.NoError(t, err)
	defer s.Shutdown(ctx)

	hold, release := gate()
	hold.Requirements = batchsystem.Requirements{Cores: 1}
	holdID, err := s.Issue(ctx, hold)
	require.NoError(t, err)
	big, releaseBig := gate()
	big.JobID, big.Requirements = "big", batchsystem.Requirements{Cores: 2}
	bigID, err := s.Issue(ctx, big)
	require.NoError(t, err)
	small, releaseSmall := gate()
	small.JobID, small.Requirements = "small", batchsystem.Requirements{Cores: 1}
	smallID, err := s.Issue(ctx, small)
	require.NoError(t, err)

	running, err := s.Running(ctx)
	require.NoError(t, err)
	require.Contains(t, running, holdID)
	require.Contains(t, running, smallID, "the small job starts past the big one")
	require.NotContains(t, running, bigID)
	require.Contains(t, s.SchedulingStatus(bigID), "not enough cores")

	close(release)
	close(releaseSmall)
	for range 2 {
		f, err := s.WaitFinished(ctx, 5*time.Second)
		require.NoError(t, err)
		require.NotNil(t, f)
	}
	require.Eventually(t, func() bool {
		r, _ := s.Running(ctx)
		_, ok := r[bigID]
		return ok
	}, 5*time.Second, 10*time.Millisecond, "the big job starts once both cores are free")
	close(releaseBig)
}

func TestPanicInJobIsAFailure(t *testing.T) {
	ctx := t.Context()
	s, err := local.New(local.Options{})
	require.NoError(t, err)
	defer s.Shutdown(ctx)
	_, err = s.Issue(ctx, batchsystem.JobSpec{JobID: "p", Requirements: batchsystem.Requirements{Cores: 1}, Run: func(context.Context) error { panic("oops") }})
	require.NoError(t, err)
	f, err := s.WaitFinished(ctx, 5*time.Second)
	require.NoError(t, err)
	require.NotNil(t, f)
	require.Equal(t, 1, f.ExitCode)
	require.Contains(t, f.Message, "oops")
}

func TestModeMismatchIsRefused(t *testing.T) {
	s, err := local.New(local.Options{Mode: local.Subprocess})
	require.NoError(t, err)
	_, err = s.Issue(t.Context(), batchsystem.JobSpec{JobID: "x", Run: func(context.Context) error { return nil }})
	require.ErrorContains(t, err, "needs JobSpec.Command")
}
