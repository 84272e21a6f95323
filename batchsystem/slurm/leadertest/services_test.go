package leadertest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
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
	addr, err := in.Addr.Value()
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
		jc.AddChild(Hit.New(hitIn{Addr: svc.Value(), Post: true}))
	}
	read := Hit.New(hitIn{Addr: svc.Value()})
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
	require.Equal(t, 1+1+5+1, st.Issued, "root, service, children, follow-on")
	t.Logf("service workflow on Slurm in %v", time.Since(start).Round(time.Millisecond))
	require.Empty(t, jobsOf(t, prefix, ""), "the service's Slurm job ended")
}
