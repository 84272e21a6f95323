package gaffer_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer"
)

// holdRelease is the channel Hold waits on, made anew by each run of the test.
var holdRelease atomic.Pointer[chan struct{}]

// Hold blocks until released; its child and follow-on wait for it.
var Hold = gaffer.MustRegister("why.hold", func(ctx context.Context, jc *gaffer.JobContext, _ struct{}) (int, error) {
	child := Add.New([]int{1}, gaffer.Name("child"))
	jc.AddChild(child)
	<-*holdRelease.Load()
	return 0, nil
})

var HoldRoot = gaffer.MustRegister("why.root", func(ctx context.Context, jc *gaffer.JobContext, _ struct{}) (int, error) {
	hold := Hold.New(struct{}{}, gaffer.Name("hold"))
	after := Add.New([]int{2}, gaffer.Name("after"))
	jc.AddChild(hold)
	hold.AddFollowOn(after)
	return 0, nil
})

// For any job not running, the leader says why.
func TestWhyExplainsEveryWait(t *testing.T) {
	release := make(chan struct{})
	holdRelease.Store(&release)
	l, _ := newLeader(t, testOpts{})
	done := make(chan error, 1)
	go func() { _, err := l.Run(t.Context(), HoldRoot.New(struct{}{})); done <- err }()

	// The root is j1, hold is j2, after is j3 (IDs are given in graph order).
	require.Eventually(t, func() bool { return l.Status().Issued == 1 && l.Status().Live == 3 }, 10*time.Second, time.Millisecond)
	require.Equal(t, "body done; waiting for 1 child subtree(s)", l.Why(1))
	require.Contains(t, l.Why(2), "issued to the batch system")
	require.Contains(t, l.Why(3), "waiting for 1 of 1 predecessor(s)")
	require.Contains(t, l.Why(3), "hold (j2)")
	require.Contains(t, l.Why(99), "done (or never existed)")
	st := l.Status()
	require.Equal(t, 0, st.Ready)
	require.False(t, st.Finished)

	close(release)
	require.NoError(t, <-done)
	require.True(t, l.Status().Succeeded)
}
