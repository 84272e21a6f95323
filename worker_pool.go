package gaffer

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/gafferhq/gaffer/internal/procgroup"
	"github.com/gafferhq/gaffer/internal/rusage"
)

// poolArg, after WorkerArg, starts a program as a pool worker
// (transport_pool.go): it runs jobs one after another, each sent by its
// leader over standard input, and answers on standard output.
const poolArg = "pool"

// envPoolNonce passes a pool worker the word that marks, in its standard
// error, the end of each job's log; the worker removes it from its
// environment, so that what its jobs start does not see it.
const envPoolNonce = "GAFFER_POOL_NONCE"

// poolReply is a pool worker's answer to a job.
type poolReply struct {
	Out *outcome `json:"out"`
	// RSS is the worker's resident memory after the job (bytes), for the
	// leader to recycle a worker that grew.
	RSS int64 `json:"rss,omitempty"`
}

// endMarker is the line a pool worker writes to its standard error after
// each job: the leader's reader cuts the job's log there.
func endMarker(nonce string, seq uint64) string {
	return fmt.Sprintf("\x00gaffer-end %s %d\n", nonce, seq)
}

// poolWorkerMain serves jobs until its leader closes its input, or dies:
// at the end of its input it exits at once, even mid-job, and takes the
// processes its jobs started with it (procgroup.Exit). So no pool job ends
// while its leader is down, and nothing of a dead leader runs on.
func poolWorkerMain() int {
	nonce := os.Getenv(envPoolNonce)
	os.Unsetenv(envPoolNonce)
	// Jobs and what they start must not read the leader's frames or
	// write into the replies: the channel moves to fresh descriptors, and
	// what is written to standard output goes to standard error, the
	// job's log.
	in, out, err := takeStdio()
	if err != nil {
		fmt.Fprintf(os.Stderr, "gaffer pool worker: %v\n", err)
		return 2
	}
	w := &poolSender{w: bufio.NewWriter(out)}
	type job struct {
		env  envelope
		stop chan struct{}
	}
	jobs := make(chan job, 1)
	var mu sync.Mutex
	stops := map[uint64]chan struct{}{}
	go func() {
		r := bufio.NewReaderSize(in, 64<<10)
		for {
			kind, body, err := readFrame(r)
			if err != nil {
				if !errors.Is(err, io.EOF) {
					fmt.Fprintf(os.Stderr, "gaffer pool worker: reading from the leader: %v\n", err)
				}
				procgroup.Exit(3) // the leader is gone, or broke the channel
			}
			switch kind {
			case frameJob:
				var j job
				if err := json.Unmarshal(body, &j.env); err != nil {
					fmt.Fprintf(os.Stderr, "gaffer pool worker: a job it cannot read: %v\n", err)
					procgroup.Exit(3)
				}
				if j.env.Service {
					// Registered before the job runs, so that a stop sent
					// at once finds it.
					j.stop = make(chan struct{})
					mu.Lock()
					stops[j.env.Seq] = j.stop
					mu.Unlock()
				}
				jobs <- j
			case frameStop:
				if len(body) == 8 {
					seq := binary.LittleEndian.Uint64(body)
					mu.Lock()
					if ch, ok := stops[seq]; ok {
						close(ch)
						delete(stops, seq)
					}
					mu.Unlock()
				}
			}
		}
	}()
	for j := range jobs {
		env := &j.env
		var hooks *svcHooks
		if env.Service {
			hooks = &svcHooks{stop: j.stop, started: func(v []byte) error {
				b, err := json.Marshal(startReport{Job: env.Job, Epoch: env.Epoch, Seq: env.Seq, Value: v})
				if err != nil {
					return err
				}
				return w.send(frameStarted, b)
			}}
		}
		cpu0, _ := rusage.CPU()
		o := runJob(context.Background(), env, os.Stderr, nil, hooks)
		if env.Service {
			mu.Lock()
			delete(stops, env.Seq)
			mu.Unlock()
		}
		cpu1, _ := rusage.CPU()
		o.CPU = cpu1 - cpu0
		o.MaxRSS, _ = rusage.RSS()
		if !o.OK {
			fmt.Fprintf(os.Stderr, "gaffer worker: job %s failed: %s\n", env.Job, o.Error)
		}
		os.Stderr.WriteString(endMarker(nonce, env.Seq))
		b, err := json.Marshal(poolReply{Out: o, RSS: o.MaxRSS})
		if err == nil {
			err = w.send(frameReply, b)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "gaffer pool worker: replying: %v\n", err)
			return 4
		}
	}
	return 0
}

// poolSender writes frames for the job and for its services' start
// reports, one at a time.
type poolSender struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (s *poolSender) send(kind byte, body []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return writeFrame(s.w, kind, body)
}
