// Package kv holds the service and job types of the service example: a
// key-value server over HTTP, jobs that write to it and a job that reads
// everything back.
package kv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/services"
)

// Jobs and the server are small, so that the server's slot leaves room
// for many writers at once.
var small = []gaffer.JobOption{gaffer.Cores(0.1), gaffer.Memory("64Mi"), gaffer.Disk("1Mi")}

// Server is the key-value service type. Its value is the server's base
// URL, on 127.0.0.1: good for jobs on this machine only (see package
// services on addresses).
var Server = gaffer.MustRegisterService("examples.service.kv", func(ctx context.Context, jc *gaffer.JobContext, _ struct{}) (services.Service[string], error) {
	return &server{m: map[string]string{}}, nil
}, small...)

// server keeps the keys in memory; they live as long as the service.
type server struct {
	mu  sync.Mutex
	m   map[string]string
	srv *http.Server
	url string
}

// Health is what GET /healthz answers.
type Health struct {
	PID  int `json:"pid"`
	Keys int `json:"keys"`
}

// Start listens before it returns, so the clients that the leader
// issues as soon as Start returns find the port open.
func (s *server) Start(ctx context.Context) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /kv/{key}", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.m[r.PathValue("key")] = string(b)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /kv/{key}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		v, ok := s.m[r.PathValue("key")]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, v)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		h := Health{PID: os.Getpid(), Keys: len(s.m)}
		s.mu.Unlock()
		json.NewEncoder(w).Encode(h)
	})
	s.srv = &http.Server{Handler: mux}
	s.url = "http://" + ln.Addr().String()
	go s.srv.Serve(ln) // returns ErrServerClosed after Stop; any other failure shows in Check
	return s.url, nil
}

// Check asks the server over HTTP, as its clients do, so that a server
// that stopped answering fails the service rather than its clients.
func (s *server) Check(ctx context.Context) error {
	_, err := health(ctx, s.url)
	return err
}

// Stop copes with a server that never started, as services.Service asks.
// It closes rather than shuts down: every user has finished by now, so
// there is nothing to drain, and Shutdown would wait up to 5 s for any
// connection a client dialed but never sent a request on (net/http
// counts those as active), which the clients' shared transport does when
// many requests race for a connection.
func (s *server) Stop(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Close()
}

func health(ctx context.Context, base string) (Health, error) {
	var h Health
	b, err := do(ctx, http.MethodGet, base+"/healthz", "")
	if err != nil {
		return h, err
	}
	return h, json.Unmarshal(b, &h)
}

// errNotFound is a GET of a key the server does not hold.
var errNotFound = errors.New("no such key")

// do sends one request and returns the body of a 2xx answer.
func do(ctx context.Context, method, u, body string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("%s %s: %w", method, u, errNotFound)
	case resp.StatusCode/100 != 2:
		return nil, fmt.Errorf("%s %s: %s: %s", method, u, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}

func keyURL(base, key string) string { return base + "/kv/" + url.PathEscape(key) }

// PutIn is a writer's input. Addr is the server's Start value, which the
// leader fills in once the server has started.
type PutIn struct {
	Addr  gaffer.Promise[string]
	Key   string
	Index int
}

// Written says what a writer stored, and from which process.
type Written struct {
	Key, Value string
	PID        int
}

// Put stores one key. The value names the writer's process, so the check
// also shows where the writers ran.
var Put = gaffer.MustRegister("examples.service.put", func(ctx context.Context, jc *gaffer.JobContext, in PutIn) (Written, error) {
	addr, err := in.Addr.Get()
	if err != nil {
		return Written{}, err
	}
	w := Written{Key: in.Key, PID: os.Getpid()}
	w.Value = fmt.Sprintf("value %d from pid %d", in.Index, w.PID)
	_, err = do(ctx, http.MethodPut, keyURL(addr, in.Key), w.Value)
	return w, err
}, small...)

// CheckIn is the reader's input: the server and every writer's result.
type CheckIn struct {
	Addr    gaffer.Promise[string]
	Written []gaffer.Promise[Written]
}

// Summary is the workflow's result.
type Summary struct {
	Keys       int // keys written
	Intact     int // read back with the value written
	WriterPIDs int // distinct processes the writers ran in
	ServerPID  int
	CheckPID   int
}

func (s Summary) String() string {
	return fmt.Sprintf("%d of %d keys read back intact; writers ran in %d process(es), the server in pid %d, the check in pid %d",
		s.Intact, s.Keys, s.WriterPIDs, s.ServerPID, s.CheckPID)
}

// Check reads every key back and compares it with what its writer
// stored. Any difference fails the job.
var Check = gaffer.MustRegister("examples.service.check", func(ctx context.Context, jc *gaffer.JobContext, in CheckIn) (Summary, error) {
	addr, err := in.Addr.Get()
	if err != nil {
		return Summary{}, err
	}
	sum := Summary{Keys: len(in.Written), CheckPID: os.Getpid()}
	pids := map[int]bool{}
	var bad []string
	for _, p := range in.Written {
		w, err := p.Get()
		if err != nil {
			return sum, err
		}
		pids[w.PID] = true
		got, err := do(ctx, http.MethodGet, keyURL(addr, w.Key), "")
		switch {
		case err != nil:
			bad = append(bad, err.Error())
		case string(got) != w.Value:
			bad = append(bad, fmt.Sprintf("%s: got %q, want %q", w.Key, got, w.Value))
		default:
			sum.Intact++
		}
	}
	sum.WriterPIDs = len(pids)
	h, err := health(ctx, addr)
	if err != nil {
		return sum, err
	}
	sum.ServerPID = h.PID
	if h.Keys != sum.Keys {
		// Only the writers touch this server: more keys would be a bug.
		bad = append(bad, fmt.Sprintf("the server holds %d keys", h.Keys))
	}
	if len(bad) > 0 {
		return sum, fmt.Errorf("%d of %d keys wrong: %s", len(bad), sum.Keys, strings.Join(bad, "; "))
	}
	return sum, nil
}, small...)

// Root starts the server for its subtree, adds a writer per key as a
// child and the check as a follow-on; the server stops once both have
// finished. The workflow's value is the check's summary.
var Root = gaffer.MustRegister("examples.service.root", func(ctx context.Context, jc *gaffer.JobContext, n int) (Summary, error) {
	kv := Server.New(struct{}{})
	jc.AddService(kv)
	written := make([]gaffer.Promise[Written], n)
	for i := range n {
		put := Put.New(PutIn{Addr: kv.Result(), Key: fmt.Sprintf("key-%04d", i), Index: i})
		jc.AddChild(put)
		written[i] = put.Result()
	}
	check := Check.New(CheckIn{Addr: kv.Result(), Written: written})
	jc.AddFollowOn(check)
	return gaffer.Forward(jc, check.Result())
}, small...)
