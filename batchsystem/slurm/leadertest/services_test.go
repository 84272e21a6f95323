package leadertest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/services"
)

// counter is a service holding one number behind HTTP: POST adds, GET
// reads. It runs as a Slurm job; its users are other Slurm jobs.
type counter struct {
	mu  sync.Mutex
	n   int
	srv *http.Server
}

var Counter = gaffer.MustRegisterService("lt.counter", func(ctx context.Context, jc *gaffer.JobContext, _ struct{}) (services.Service[string], error) {
	return &counter{}, nil
})

func (c *counter) Start(ctx context.Context) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // the cluster is this machine
	if err != nil {
		return "", err
	}
	c.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if r.Method == http.MethodPost {
			c.n++
		}
		fmt.Fprintf(w, "%d %d", c.n, os.Getpid())
	})}
	go c.srv.Serve(ln)
	return "http://" + ln.Addr().String(), nil
}

func (c *counter) Stop(ctx context.Context) error { return c.srv.Close() }

type hitIn struct {
	Addr gaffer.Promise[string]
	Post bool
}

// Hit posts to (or reads) the counter; it returns the server's answer:
// the count and the server's pid.
var Hit = gaffer.MustRegister("lt.hit", func(ctx context.Context, jc *gaffer.JobContext, in hitIn) (string, error) {
	addr, err := in.Addr.Get()
	if err != nil {
		return "", err
	}
	method := http.MethodGet
	if in.Post {
		method = http.MethodPost
	}
	req, _ := http.NewRequestWithContext(ctx, method, addr, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}, small...)

// CounterRoot adds the counter service, n children that post to it and
// a follow-on that reads it.
var CounterRoot = gaffer.MustRegister("lt.counter.root", func(ctx context.Context, jc *gaffer.JobContext, n int) (string, error) {
	svc := Counter.New(struct{}{}, small...)
	jc.AddService(svc)
	for range n {
		jc.AddChild(Hit.New(hitIn{Addr: svc.Result(), Post: true}))
	}
	read := Hit.New(hitIn{Addr: svc.Result()})
	jc.AddFollowOn(read)
	return gaffer.Forward(jc, read.Result())
}, small...)

// A service on Slurm: the counter runs as a Slurm job, its start value
// reaches the leader through the shared work directory, five Slurm jobs
// use it, and it is stopped by its flag once the follow-on has read it:
// no Slurm job is left.
func TestServiceOnSlurm(t *testing.T) {
	needCluster(t)
	prefix := uniquePrefix("svc")
	bs := newSlurm(t, prefix)
	l, _ := newLeader(t, gaffer.Config{BatchSystem: bs, NoSync: true, ServicePollInterval: 100 * time.Millisecond})
	start := time.Now()
	got, err := gaffer.Run(t.Context(), l, CounterRoot.New(5))
	require.NoError(t, err)
	fields := strings.Fields(got)
	require.Len(t, fields, 2, "%q", got)
	require.Equal(t, "5", fields[0], "every child reached the one server")
	require.NotEqual(t, fmt.Sprint(os.Getpid()), fields[1], "the server ran in a Slurm job, not in the leader")
	st := l.Stats()
	require.Equal(t, 1+1+5+1, st.Attempts, "root, service, children, follow-on")
	t.Logf("service workflow on Slurm in %v", time.Since(start).Round(time.Millisecond))
	require.Empty(t, jobsOf(t, prefix, ""), "the service's Slurm job ended")
}

// Cancelling the workflow from outside the leader (as another process
// would, through the work directory) scancels its Slurm jobs, records it
// as cancelled, and a later leader does not resume it.
func TestRequestCancelWorkflowOnSlurm(t *testing.T) {
	needCluster(t)
	prefix := uniquePrefix("rcancel")
	bs := newSlurm(t, prefix)
	marks := filepath.Join(t.TempDir(), "marks")
	l, store := newLeader(t, gaffer.Config{BatchSystem: bs, NoSync: true, ControlInterval: 100 * time.Millisecond,
		WorkerEnv: map[string]string{envMarks: marks, envPhase: "1"}})
	steps := []Step{{Sleep: 5 * time.Minute, Value: 1}, {Sleep: 5 * time.Minute, Value: 2}}
	done := make(chan error, 1)
	go func() { _, err := gaffer.Run(t.Context(), l, Steps.New(steps)); done <- err }()
	waitFor(t, 60*time.Second, "every leaf to start", func() bool {
		return countMarks(readMarks(t, marks), "start") == len(steps)
	})
	require.NoError(t, gaffer.RequestCancelWorkflow(store+".work"))
	var err error
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("the leader did not act on the cancel request")
	}
	require.ErrorIs(t, err, gaffer.ErrCancelled)
	require.Empty(t, jobsOf(t, prefix, ""), "no Slurm job of the workflow is left")
	require.NoError(t, l.Close())

	l2, _ := newLeader(t, gaffer.Config{Store: store, BatchSystem: bs, NoSync: true})
	_, err = l2.Run(t.Context(), nil)
	require.ErrorIs(t, err, gaffer.ErrCancelled, "a cancelled workflow stays cancelled")
	require.Zero(t, l2.Stats().Attempts)
}
