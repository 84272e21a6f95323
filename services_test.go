package gaffer_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem/local"
	"github.com/gafferhq/gaffer/scaler"
	"github.com/gafferhq/gaffer/services"
)

type svcIn struct {
	Test, Name string
	FailStart  bool // Start fails
	FailCheck  bool // Check fails once it is first called
	Cores      float64
}

// running counts the test services running now, and the most at once.
var svcRunning, svcMaxRunning atomic.Int32

// TestSvc records its start and stop, and returns "value-of-<name>".
var TestSvc = gaffer.MustRegisterService("test.svc", func(ctx context.Context, jc *gaffer.JobContext, in svcIn) (services.Service[string], error) {
	return services.Funcs[string]{
		StartFunc: func(ctx context.Context) (string, error) {
			if in.FailStart {
				return "", errors.New("cannot start " + in.Name)
			}
			record(in.Test, "start:"+in.Name)
			n := svcRunning.Add(1)
			for m := svcMaxRunning.Load(); n > m && !svcMaxRunning.CompareAndSwap(m, n); m = svcMaxRunning.Load() {
			}
			return "value-of-" + in.Name, nil
		},
		StopFunc: func(ctx context.Context) error {
			if !in.FailStart {
				svcRunning.Add(-1)
				record(in.Test, "stop:"+in.Name)
			}
			return nil
		},
		CheckFunc: func(ctx context.Context) error {
			if in.FailCheck {
				return errors.New(in.Name + " broke")
			}
			return nil
		},
	}, nil
})

type svcUseIn struct {
	Test, Name string
	Value      gaffer.Promise[string]
	Fail       bool
	Sleep      time.Duration
}

// Use records the service value it was given.
var UseSvc = gaffer.MustRegister("test.svcuse", func(ctx context.Context, jc *gaffer.JobContext, in svcUseIn) (string, error) {
	if in.Sleep > 0 {
		select {
		case <-time.After(in.Sleep):
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if in.Fail {
		return "", errors.New(in.Name + " failed")
	}
	v, err := in.Value.Get()
	if err != nil {
		return "", err
	}
	record(in.Test, "use:"+in.Name+":"+v)
	return v, nil
})

func use(test, name string, v gaffer.Promise[string], opts ...gaffer.JobOption) *gaffer.Job[string] {
	return UseSvc.New(svcUseIn{Test: test, Name: name, Value: v}, append([]gaffer.JobOption{gaffer.Name(name)}, opts...)...)
}

// A job's services start after its body and before its children, and
// stop after its children and follow-ons; the successors get the value.
func TestServiceLifecycle(t *testing.T) {
	const test = "svc-life"
	resetTrace(test)
	l, _ := newLeader(t, testOpts{})
	root := step(test, "root")
	svc := TestSvc.New(svcIn{Test: test, Name: "db"})
	root.AddService(svc)
	root.AddChild(use(test, "child", svc.Result()))
	root.AddFollowOn(use(test, "follow", svc.Result()))

	_, err := gaffer.Run(t.Context(), l, root)
	require.NoError(t, err)
	require.Zero(t, l.Status().Services, "no service left")
	s := steps(test)
	at := func(x string) int { return indexOf(t, s, x) }
	require.Less(t, at("root"), at("start:db"))
	require.Less(t, at("start:db"), at("use:child:value-of-db"))
	require.Less(t, at("use:child:value-of-db"), at("use:follow:value-of-db"))
	require.Less(t, at("use:follow:value-of-db"), at("stop:db"))
	require.Len(t, s, 5, "%v", s)
}

// The same through worker processes: the start value crosses by file,
// and the stop flag reaches the host in its folder.
// In a pool worker, the start value and the stop cross the worker's pipes.
func TestServiceLifecycleSubprocess(t *testing.T) {
	for _, mode := range workerModes {
		t.Run(mode.String(), func(t *testing.T) {
			l, _ := newLeader(t, testOpts{mode: mode, cfg: func(c *gaffer.Config) {
				c.ServicePollInterval = 20 * time.Millisecond
				c.PollInterval = 50 * time.Millisecond
			}})
			root := KVClient.New(kvClientIn{Keys: 5})
			got, err := gaffer.Run(t.Context(), l, root)
			require.NoError(t, err)
			require.Equal(t, "k0=v0,k1=v1,k2=v2,k3=v3,k4=v4", got)
		})
	}
}

// A child service starts after its parent and may take its value.
func TestChildServiceStartsAfterParent(t *testing.T) {
	const test = "svc-tree"
	resetTrace(test)
	l, _ := newLeader(t, testOpts{})
	root := step(test, "root")
	parent := TestSvc.New(svcIn{Test: test, Name: "parent"})
	child := TestSvc.New(svcIn{Test: test, Name: "child"})
	parent.AddChildService(child)
	root.AddService(parent)
	root.AddChild(use(test, "user", child.Result()))
	_, err := gaffer.Run(t.Context(), l, root)
	require.NoError(t, err)
	s := steps(test)
	at := func(x string) int { return indexOf(t, s, x) }
	require.Less(t, at("start:parent"), at("start:child"))
	require.Less(t, at("start:child"), at("use:user:value-of-child"))
	require.Less(t, at("use:user:value-of-child"), at("stop:child"))
	require.Less(t, at("use:user:value-of-child"), at("stop:parent"))
}

// A service that cannot start fails its client's subtree: the children
// never run, the client's other service is stopped, and the error names
// the service.
func TestFailedServiceFailsSubtree(t *testing.T) {
	const test = "svc-fail"
	resetTrace(test)
	l, _ := newLeader(t, testOpts{})
	root := step(test, "root")
	good := TestSvc.New(svcIn{Test: test, Name: "good"})
	bad := TestSvc.New(svcIn{Test: test, Name: "bad", FailStart: true})
	root.AddService(good)
	root.AddService(bad)
	root.AddChild(use(test, "child", good.Result()))
	_, err := gaffer.Run(t.Context(), l, root)
	var fe *gaffer.FailedJobsError
	require.ErrorAs(t, err, &fe)
	require.Len(t, fe.Jobs, 1)
	require.Equal(t, "test.svc", fe.Jobs[0].Kind)
	require.Contains(t, fe.Jobs[0].Err, "cannot start bad")
	require.Zero(t, l.Status().Services, "the failed one and the stopped one are not live")
	require.Equal(t, 2, fe.Jobs[0].Tries, "retried before it started")
	s := steps(test)
	require.NotContains(t, s, "use:child:value-of-good")
	if indexOf(t, s, "start:good") >= 0 {
		require.Contains(t, s, "stop:good", "the other service is stopped")
	}
}

// A service that fails while its users run fails the subtree; it is not
// restarted.
func TestServiceFailingWhileRunning(t *testing.T) {
	const test = "svc-check"
	resetTrace(test)
	l, _ := newLeader(t, testOpts{cfg: func(c *gaffer.Config) { c.ServicePollInterval = 10 * time.Millisecond }})
	root := step(test, "root")
	svc := TestSvc.New(svcIn{Test: test, Name: "flaky", FailCheck: true})
	root.AddService(svc)
	child := UseSvc.New(svcUseIn{Test: test, Name: "slow", Value: svc.Result(), Sleep: 2 * time.Second})
	root.AddChild(child)
	_, err := gaffer.Run(t.Context(), l, root)
	var fe *gaffer.FailedJobsError
	require.ErrorAs(t, err, &fe)
	require.Len(t, fe.Jobs, 1, "%v", err)
	require.Contains(t, fe.Jobs[0].Err, "failed while running")
	require.Contains(t, fe.Jobs[0].Err, "flaky broke")
	require.Equal(t, 1, strings.Count(strings.Join(steps(test), " "), "start:flaky"), "not restarted once it had started")
}

// MaxServices queues services beyond the cap; they all run in the end.
func TestServiceLimit(t *testing.T) {
	const test = "svc-limit"
	resetTrace(test)
	svcMaxRunning.Store(0)
	l, _ := newLeader(t, testOpts{cfg: func(c *gaffer.Config) { c.MaxServices = 1 }})
	root := step(test, "root")
	for i := range 4 {
		c := step(test, fmt.Sprintf("client%d", i))
		svc := TestSvc.New(svcIn{Test: test, Name: fmt.Sprintf("s%d", i)})
		c.AddService(svc)
		c.AddChild(use(test, fmt.Sprintf("u%d", i), svc.Result()))
		root.AddChild(c)
	}
	_, err := gaffer.Run(t.Context(), l, root)
	require.NoError(t, err)
	require.EqualValues(t, 1, svcMaxRunning.Load(), "never more than MaxServices at once")
	for i := range 4 {
		require.Contains(t, steps(test), fmt.Sprintf("use:u%d:value-of-s%d", i, i))
	}
}

// Services that fill the machine while their client's child waits for
// room: a service deadlock, reported with the services and the waiting
// job, well before the test's own deadline.
func TestServiceDeadlockDetected(t *testing.T) {
	const test = "svc-deadlock"
	resetTrace(test)
	bs, err := local.New(local.Options{Cores: 1, Memory: 1 << 30, Disk: 1 << 30})
	require.NoError(t, err)
	t.Cleanup(func() { bs.Shutdown(context.Background()) })
	l, _ := newLeader(t, testOpts{cfg: func(c *gaffer.Config) {
		c.BatchSystem = bs
		c.DeadlockWait, c.DeadlockCheckInterval = 300*time.Millisecond, 50*time.Millisecond
		c.PollInterval = 50 * time.Millisecond
	}})
	root := step(test, "root")
	svc := TestSvc.New(svcIn{Test: test, Name: "hog"}, gaffer.Cores(1), gaffer.Name("hog"))
	root.AddService(svc)
	root.AddChild(use(test, "starved", svc.Result(), gaffer.Cores(1)))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, err = gaffer.Run(ctx, l, root)
	require.ErrorIs(t, err, gaffer.ErrDeadlock)
	var de *gaffer.DeadlockError
	require.ErrorAs(t, err, &de)
	require.Len(t, de.Services, 1)
	require.Contains(t, de.Services[0], "hog")
	require.Contains(t, err.Error(), "starved")
	require.NotContains(t, steps(test), "use:starved:value-of-hog")
}

// No deadlock is reported while a job waits out a retry backoff longer
// than the deadlock wait, even though only the service runs meanwhile.
func TestNoDeadlockDuringBackoff(t *testing.T) {
	const test = "svc-backoff"
	resetTrace(test)
	var tries atomic.Int32
	flaky := gaffer.MustRegister(fmt.Sprintf("test.flaky-%d", time.Now().UnixNano()), func(ctx context.Context, jc *gaffer.JobContext, v gaffer.Promise[string]) (string, error) {
		if tries.Add(1) == 1 {
			return "", errors.New("first try fails")
		}
		return v.Get()
	})
	l, _ := newLeader(t, testOpts{cfg: func(c *gaffer.Config) {
		c.DeadlockWait, c.DeadlockCheckInterval = 200*time.Millisecond, 20*time.Millisecond
		c.PollInterval = 20 * time.Millisecond
		c.RetryBackoff = time.Second
	}})
	root := step(test, "root")
	svc := TestSvc.New(svcIn{Test: test, Name: "db"})
	root.AddService(svc)
	root.AddChild(flaky.New(svc.Result()))
	_, err := gaffer.Run(t.Context(), l, root)
	require.NoError(t, err)
	require.EqualValues(t, 2, tries.Load())
}

// A checkpoint whose subtree fails runs again, with its old subtree
// removed, and the workflow succeeds on the second pass.
func TestCheckpointRestartsSubtree(t *testing.T) {
	var bodies, childTries atomic.Int32
	name := fmt.Sprintf("test.cp-%d", time.Now().UnixNano())
	child := gaffer.MustRegister(name+".child", func(ctx context.Context, jc *gaffer.JobContext, pass int32) (int32, error) {
		if childTries.Add(1) == 1 {
			return 0, errors.New("the first pass's child fails")
		}
		return pass, nil
	})
	cp := gaffer.MustRegister(name, func(ctx context.Context, jc *gaffer.JobContext, _ struct{}) (int32, error) {
		pass := bodies.Add(1)
		c := child.New(pass)
		jc.AddChild(c)
		return gaffer.Forward(jc, c.Result())
	}, gaffer.Checkpoint())
	l, _ := newLeader(t, testOpts{cfg: func(c *gaffer.Config) { c.RetryCount = gaffer.NoRetries }})
	root := cp.New(struct{}{}, gaffer.Retries(1))
	got, err := gaffer.Run(t.Context(), l, root)
	require.NoError(t, err)
	require.EqualValues(t, 2, got, "the value comes from the second pass")
	require.EqualValues(t, 2, bodies.Load())
	require.EqualValues(t, 2, childTries.Load(), "the child has no retries of its own; the checkpoint's try re-ran it")
}

// Without tries left, a checkpoint fails like any job, naming the
// failed child.
func TestCheckpointOutOfTries(t *testing.T) {
	name := fmt.Sprintf("test.cp-out-%d", time.Now().UnixNano())
	child := gaffer.MustRegister(name+".child", func(ctx context.Context, jc *gaffer.JobContext, _ int) (int, error) {
		return 0, errors.New("always fails")
	})
	var bodies atomic.Int32
	cp := gaffer.MustRegister(name, func(ctx context.Context, jc *gaffer.JobContext, _ int) (int, error) {
		bodies.Add(1)
		jc.AddChild(child.New(0))
		return 0, nil
	}, gaffer.Checkpoint(), gaffer.Retries(2))
	l, _ := newLeader(t, testOpts{cfg: func(c *gaffer.Config) { c.RetryCount = gaffer.NoRetries }})
	_, err := gaffer.Run(t.Context(), l, cp.New(0))
	var fe *gaffer.FailedJobsError
	require.ErrorAs(t, err, &fe)
	require.EqualValues(t, 3, bodies.Load(), "ran once and restarted twice")
	require.Len(t, fe.Jobs, 1)
	require.Contains(t, fe.Jobs[0].Err, "always fails")
}

// A checkpoint must be a leaf when it is created.
func TestCheckpointMustBeALeaf(t *testing.T) {
	l, _ := newLeader(t, testOpts{})
	root := Step.New(stepIn{"cp-leaf", "root"}, gaffer.Checkpoint())
	root.AddChild(step("cp-leaf", "child"))
	_, err := gaffer.Run(t.Context(), l, root)
	var ge *gaffer.GraphError
	require.ErrorAs(t, err, &ge)
	require.Contains(t, ge.Problem, "checkpoint must be a leaf")
}

// Services cannot be successors, and a service needs a client.
func TestServiceGraphMistakes(t *testing.T) {
	l, _ := newLeader(t, testOpts{})
	root := step("svc-graph", "root")
	svc := TestSvc.New(svcIn{Name: "x"})
	root.AddService(svc)
	root.AddService(svc)
	_, err := gaffer.Run(t.Context(), l, root)
	require.ErrorIs(t, err, gaffer.ErrInvalidGraph)
	require.Contains(t, err.Error(), "service added twice")
}

// kvServer is a small key-value store over HTTP on 127.0.0.1, run as a
// service by KVClient's jobs in worker processes.
type kvServer struct {
	mu  sync.Mutex
	m   map[string]string
	srv *http.Server
}

var KVService = gaffer.MustRegisterService("test.kv", func(ctx context.Context, jc *gaffer.JobContext, _ struct{}) (services.Service[string], error) {
	return &kvServer{m: map[string]string{}}, nil
})

func (s *kvServer) Start(ctx context.Context) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		k := strings.TrimPrefix(r.URL.Path, "/")
		if r.Method == http.MethodPut {
			b, _ := io.ReadAll(r.Body)
			s.m[k] = string(b)
			return
		}
		io.WriteString(w, s.m[k])
	})}
	go s.srv.Serve(ln)
	return "http://" + ln.Addr().String(), nil
}

func (s *kvServer) Stop(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	// Close, not Shutdown: every user has finished, and Shutdown waits
	// for idle keep-alive connections that a client opened but never used.
	return s.srv.Close()
}

type kvClientIn struct{ Keys int }
type kvPutIn struct {
	Addr     gaffer.Promise[string]
	Key, Val string
}
type kvGetIn struct {
	Addr gaffer.Promise[string]
	Keys []string
}

var KVPut = gaffer.MustRegister("test.kv.put", func(ctx context.Context, jc *gaffer.JobContext, in kvPutIn) (struct{}, error) {
	addr, err := in.Addr.Get()
	if err != nil {
		return struct{}{}, err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, addr+"/"+in.Key, strings.NewReader(in.Val))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return struct{}{}, err
	}
	return struct{}{}, resp.Body.Close()
})

var KVGet = gaffer.MustRegister("test.kv.get", func(ctx context.Context, jc *gaffer.JobContext, in kvGetIn) (string, error) {
	addr, err := in.Addr.Get()
	if err != nil {
		return "", err
	}
	var out []string
	for _, k := range in.Keys {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, addr+"/"+k, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out = append(out, k+"="+string(b))
	}
	return strings.Join(out, ","), nil
})

var KVClient = gaffer.MustRegister("test.kv.client", func(ctx context.Context, jc *gaffer.JobContext, in kvClientIn) (string, error) {
	kv := KVService.New(struct{}{})
	jc.AddService(kv)
	var keys []string
	for i := range in.Keys {
		k := fmt.Sprintf("k%d", i)
		keys = append(keys, k)
		jc.AddChild(KVPut.New(kvPutIn{Addr: kv.Result(), Key: k, Val: fmt.Sprintf("v%d", i)}))
	}
	get := KVGet.New(kvGetIn{Addr: kv.Result(), Keys: keys})
	jc.AddFollowOn(get)
	return gaffer.Forward(jc, get.Result())
})

// bootingProvisioner has one node that stays "starting" until boot is
// closed, then vanishes (it never came up); it adds no others.
type bootingProvisioner struct {
	boot    chan struct{}
	mu      sync.Mutex
	vanishT time.Time
}

func (p *bootingProvisioner) NodeTypes(context.Context) ([]scaler.NodeType, error) {
	return []scaler.NodeType{{Name: "n", Shape: scaler.Shape{Cores: 4, Memory: 8 << 30, Disk: 8 << 30}}}, nil
}
func (p *bootingProvisioner) AddNodes(context.Context, string, int) (int, error) { return 0, nil }
func (p *bootingProvisioner) TerminateNodes(context.Context, []string) error     { return nil }
func (p *bootingProvisioner) Nodes(context.Context) ([]scaler.Node, error) {
	select {
	case <-p.boot:
		p.mu.Lock()
		if p.vanishT.IsZero() {
			p.vanishT = time.Now()
		}
		p.mu.Unlock()
		return nil, nil
	default:
		return []scaler.Node{{ID: "booting", Type: "n", State: scaler.NodeStarting, Workers: -1}}, nil
	}
}

// Jobs queued while the cluster scaler has a node starting are waiting
// for it, not for the services: no deadlock is reported until the node
// is gone and the deadlock wait has passed after that.
func TestNoDeadlockWhileANodeStarts(t *testing.T) {
	const test = "svc-booting"
	resetTrace(test)
	bs, err := local.New(local.Options{Cores: 1, Memory: 1 << 30, Disk: 1 << 30})
	require.NoError(t, err)
	t.Cleanup(func() { bs.Shutdown(context.Background()) })
	prov := &bootingProvisioner{boot: make(chan struct{})}
	l, _ := newLeader(t, testOpts{cfg: func(c *gaffer.Config) {
		c.BatchSystem, c.Provisioner = bs, prov
		c.Scaling = scaler.Config{ScaleInterval: time.Hour}
		c.DeadlockWait, c.DeadlockCheckInterval = 200*time.Millisecond, 20*time.Millisecond
		c.PollInterval = 20 * time.Millisecond
	}})
	root := step(test, "root")
	svc := TestSvc.New(svcIn{Test: test, Name: "hog"}, gaffer.Cores(1))
	root.AddService(svc)
	root.AddChild(use(test, "queued", svc.Result(), gaffer.Cores(1)))
	time.AfterFunc(time.Second, func() { close(prov.boot) }) // five deadlock waits
	_, err = gaffer.Run(t.Context(), l, root)
	require.ErrorIs(t, err, gaffer.ErrDeadlock)
	prov.mu.Lock()
	vanished := prov.vanishT
	prov.mu.Unlock()
	require.False(t, vanished.IsZero(), "the deadlock was reported while the node was still starting")
}
