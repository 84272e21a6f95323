package gaffer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/batchsystem/local"
)

// A leader may run jobs on several batch systems (Config.BatchSystems),
// as Galaxy's job dispatcher sends each job to one of several runners:
// tiny jobs in the leader's process, heavy ones in worker processes or on
// a cluster. Config.Route chooses a job's batch system the first time it
// is issued; the choice is kept in the job's record, and every later
// attempt and leader uses it (state_route.go decides; this file is the
// leader's side: one transport per kind of batch system, and waiting on
// all of them at once).

// RouteInfo is what Config.Route is told of a job, the first time it is
// issued.
type RouteInfo struct {
	Job        JobID
	Kind       string   // its job type
	Name       string   // its name (the Name option), "" if none
	Categories []string // its Category options
	// Requirements are what it asks for, Config.DefaultRequirements
	// filled in and promised requirements resolved.
	Requirements Requirements
	// Target is the batch system the job asked for (RunOn), "" if none.
	Target  string
	Service bool
}

// RunOn asks for the job to run on the batch system of Config.BatchSystems
// called name. With no Config.Route, or a Route that returns "", that is
// where it runs; a Route may choose otherwise. A leader with one batch
// system (Config.BatchSystem) runs every job on it and ignores RunOn.
func RunOn(name string) JobOption {
	return JobOption{func(j *node) error {
		if name == "" {
			return fmt.Errorf("RunOn: empty batch system name")
		}
		j.target = name
		return nil
	}}
}

// route is one of the leader's batch systems, with what the leader needs
// of it.
type route struct {
	name    string // in the attempt records, Why and the metrics
	bs      batchsystem.BatchSystem
	tr      transport
	adopter batchsystem.Adopter            // nil: its jobs do not outlive their leader
	sched   batchsystem.SchedulingStatuser // nil: it does not say why a job waits
	owned   bool                           // made by the leader, which shuts it down
	clock   Clock                          // nil: it keeps no time of its own
}

// openRoutes makes the leader's batch systems: Config.BatchSystem (or a
// local one) as route 0, or every one of Config.BatchSystems, numbered as
// the graph's route table numbers them (sorted by name, from 1).
func (l *Leader) openRoutes() error {
	cfg := l.cfg
	if len(cfg.BatchSystems) == 0 {
		bs, owned := cfg.BatchSystem, false
		if bs == nil {
			var err error
			if bs, err = local.New(local.Options{Logger: cfg.Logger}); err != nil {
				return err
			}
			owned = true
		}
		l.routes = []*route{l.newRoute(batchSystemName(bs), bs)}
		l.routes[0].owned = owned
		l.bsName = l.routes[0].name
		l.clock = l.routes[0].clock
		return nil
	}
	names := slices.Sorted(maps.Keys(cfg.BatchSystems))
	l.routes = make([]*route, 1, len(names)+1) // route 0 is no batch system
	for _, n := range names {
		l.routes = append(l.routes, l.newRoute(n, cfg.BatchSystems[n]))
		if n == cfg.ScaledBatchSystem && cfg.Provisioner != nil {
			l.scaled = uint8(len(l.routes) - 1)
			l.clock = l.routes[l.scaled].clock
		}
	}
	return nil
}

func (l *Leader) newRoute(name string, bs batchsystem.BatchSystem) *route {
	r := &route{name: name, bs: bs}
	r.adopter, _ = bs.(batchsystem.Adopter)
	r.sched, _ = bs.(batchsystem.SchedulingStatuser)
	r.clock, _ = bs.(Clock)
	// A worker pool is its batch system's own: its options (worker sizes,
	// recycling) are that batch system's.
	if wp, ok := bs.(batchsystem.WorkerPooler); ok {
		if _, ok := wp.WorkerPool(); ok {
			r.tr = newTransport(bs, l.cfg, l.log)
			l.pools = append(l.pools, r.tr)
			return r
		}
	}
	// Other transports are shared by batch systems of a kind: attempts
	// are told apart by their issue number, and one in-flight table (for
	// the in-process ones) and one look at the services' start reports
	// (for the others) serve them all.
	k := 0
	if ip, ok := bs.(batchsystem.InProcess); ok && ip.InProcess() {
		k = 1
	}
	if l.trs[k] == nil {
		l.trs[k] = newTransport(bs, l.cfg, l.log)
	}
	r.tr = l.trs[k]
	return r
}

// trOf returns the transport of an attempt on route r. An attempt of no
// route is one an earlier leader left in a job folder (graph.leftover).
func (l *Leader) trOf(r uint8) transport {
	if rt := l.routes[r]; rt != nil {
		return rt.tr
	}
	if l.trs[0] == nil {
		l.trs[0] = &dirTransport{log: l.log, keep: keepLogs{workDir: l.cfg.WorkDir, limit: l.cfg.LogLimit, success: l.cfg.KeepSuccessLogs},
			workDir: l.cfg.WorkDir, command: l.cfg.WorkerCommand, env: l.cfg.WorkerEnv}
	}
	return l.trs[0]
}

// transports lists the leader's transports, each once.
func (l *Leader) transports() []transport {
	out := slices.Clone(l.pools)
	for _, t := range l.trs {
		if t != nil {
			out = append(out, t)
		}
	}
	return out
}

// kill kills the given attempts, each on its batch system.
func (l *Leader) kill(ctx context.Context, keys []issueKey) error {
	by := map[uint8][]batchsystem.ID{}
	for _, k := range keys {
		by[k.route] = append(by[k.route], k.id)
	}
	var errs []error
	for r, ids := range by {
		if rt := l.routes[r]; rt != nil {
			if err := rt.bs.Kill(ctx, ids); err != nil {
				errs = append(errs, fmt.Errorf("batch system %q: %w", rt.name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// runningAll lists the running jobs of every batch system. A batch system
// that cannot say fails the whole query: a check that acts on it would
// act on half the picture.
func (l *Leader) runningAll(ctx context.Context) (map[issueKey]time.Duration, error) {
	out := map[issueKey]time.Duration{}
	for r, rt := range l.routes {
		if rt == nil {
			continue
		}
		m, err := rt.bs.Running(ctx)
		if err != nil {
			return nil, fmt.Errorf("batch system %q: %w", rt.name, err)
		}
		for id, d := range m {
			out[issueKey{route: uint8(r), id: id}] = d
		}
	}
	return out, nil
}

// A report is a batch system's report of an attempt's end, or its error.
type report struct {
	route uint8
	fin   *batchsystem.FinishedJob
	err   error
}

// forwarders wait on the batch systems of a leader with several, one
// goroutine each, and hand their reports to the loop on one channel.
// A leader with one waits on it directly: no goroutine, no hand-over.
type forwarders struct {
	ch     chan report
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// waitFinished waits at most wait for an attempt to end on any of the
// leader's batch systems, and returns the report and its route; nil when
// none came.
func (l *Leader) waitFinished(ctx context.Context, wait time.Duration) (uint8, *batchsystem.FinishedJob, error) {
	if l.routes[0] != nil {
		fin, err := l.routes[0].bs.WaitFinished(ctx, wait)
		return 0, fin, err
	}
	if l.fw == nil {
		l.startForwarders(ctx)
	}
	var r report
	if wait <= 0 {
		select {
		case r = <-l.fw.ch:
		default:
			return 0, nil, ctx.Err()
		}
	} else {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case r = <-l.fw.ch:
		case <-t.C:
			return 0, nil, nil
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		}
	}
	if r.err != nil {
		return 0, nil, fmt.Errorf("batch system %q: %w", l.routes[r.route].name, r.err)
	}
	return r.route, r.fin, nil
}

// forwardBuffer is how many reports may wait for the loop: enough for
// the loop to take a burst in one turn.
const forwardBuffer = 256

func (l *Leader) startForwarders(ctx context.Context) {
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	fw := &forwarders{ch: make(chan report, forwardBuffer), cancel: cancel}
	for r, rt := range l.routes {
		if rt == nil {
			continue
		}
		fw.wg.Go(func() { forward(fctx, uint8(r), rt.bs, l.cfg.PollInterval, fw.ch) })
	}
	l.fw = fw
}

// forward hands bs's reports to ch until ctx ends. A report in hand when
// the leader stops is dropped: the leader kills what it issued as it
// stops, and the job runs again (or its result is found) on resumption.
func forward(ctx context.Context, r uint8, bs batchsystem.BatchSystem, wait time.Duration, ch chan<- report) {
	for {
		fin, err := bs.WaitFinished(ctx, wait)
		if ctx.Err() != nil {
			return
		}
		if fin == nil && err == nil {
			continue
		}
		select {
		case ch <- report{route: r, fin: fin, err: err}:
		case <-ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

// stopForwarders stops the goroutines waiting on the batch systems.
func (l *Leader) stopForwarders() {
	if l.fw != nil {
		l.fw.cancel()
		l.fw.wg.Wait()
		l.fw = nil
	}
}

// routeName names route r's batch system.
func (l *Leader) routeName(r uint8) string {
	if rt := l.routes[r]; rt != nil {
		return rt.name
	}
	return ""
}

// checkRoutes checks the batch systems and routing of a Config.
func (c Config) checkRoutes() error {
	switch {
	case len(c.BatchSystems) == 0:
		if c.Route != nil {
			return fmt.Errorf("gaffer: Config.Route: it routes among Config.BatchSystems, which is empty")
		}
		if c.ScaledBatchSystem != "" {
			return fmt.Errorf("gaffer: Config.ScaledBatchSystem %q: it names one of Config.BatchSystems, which is empty", c.ScaledBatchSystem)
		}
		return nil
	case c.BatchSystem != nil:
		return fmt.Errorf("gaffer: Config.BatchSystem and Config.BatchSystems: set one (give the one batch system a name in BatchSystems)")
	case len(c.BatchSystems) > maxRoutes:
		return fmt.Errorf("gaffer: Config.BatchSystems: %d batch systems, more than %d", len(c.BatchSystems), maxRoutes)
	}
	for name, bs := range c.BatchSystems {
		if name == "" {
			return fmt.Errorf("gaffer: Config.BatchSystems: a batch system with an empty name")
		}
		if bs == nil {
			return fmt.Errorf("gaffer: Config.BatchSystems[%q]: nil", name)
		}
	}
	if c.Provisioner != nil {
		if c.ScaledBatchSystem == "" {
			return fmt.Errorf("gaffer: Config.ScaledBatchSystem: required with a Provisioner and Config.BatchSystems: name the batch system whose cluster it provisions")
		}
	}
	if _, ok := c.BatchSystems[c.ScaledBatchSystem]; c.ScaledBatchSystem != "" && !ok {
		return fmt.Errorf("gaffer: Config.ScaledBatchSystem %q: not one of Config.BatchSystems", c.ScaledBatchSystem)
	}
	return nil
}
