package gaffer

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/jobstore"
)

// Routing in the graph: which batch system a job runs on. The choice is
// made once, when the job is first issued (route), kept in its record
// (BatchSystem) and in ljob.route, and never made again: retries,
// restarts and later leaders use it. A leader with one batch system
// routes nothing; every job's route is 0.

// issueKey names an issued attempt: batch system IDs are unique only
// within one batch system.
type issueKey struct {
	route uint8
	id    batchsystem.ID
}

func (j *ljob) key() issueKey { return issueKey{route: j.route, id: j.bsID} }

// maxRoutes is how many batch systems one leader may route among (a
// route is a byte in every job; 0 means none).
const maxRoutes = 255

// routeTable maps route numbers to batch system names. names[0] is ""
// (not routed); 1... are the leader's batch systems, sorted.
type routeTable struct {
	names []string
	index map[string]uint8
	rule  func(RouteInfo) string
	// fixed: the table is the leader's, and a record naming another
	// batch system is noted in unknown (with one job of each) instead of
	// joining it. Tools that read a store (inspect.go) take every name.
	fixed   bool
	unknown map[string]JobID
}

func newRouteTable() routeTable {
	return routeTable{names: []string{""}, index: map[string]uint8{}}
}

// configure makes the table the leader's: names are its batch systems
// (none for a leader with one), rule its Config.Route.
func (t *routeTable) configure(names []string, rule func(RouteInfo) string) {
	t.fixed, t.rule = true, rule
	for _, n := range slices.Sorted(slices.Values(names)) {
		t.index[n] = uint8(len(t.names))
		t.names = append(t.names, n)
	}
}

// several reports whether jobs are routed at all.
func (t *routeTable) several() bool { return len(t.names) > 1 }

func (t *routeTable) name(r uint8) string {
	if int(r) < len(t.names) {
		return t.names[r]
	}
	return ""
}

// load returns the route of stored record r, which names a batch system.
func (t *routeTable) load(r *jobstore.Job) uint8 {
	if k, ok := t.index[r.BatchSystem]; ok {
		return k
	}
	if !t.fixed {
		if len(t.names) > maxRoutes {
			return 0
		}
		k := uint8(len(t.names))
		t.index[r.BatchSystem] = k
		t.names = append(t.names, r.BatchSystem)
		return k
	}
	// Only jobs that may still run need the batch system: pending ones,
	// and failed ones, which a restart runs again.
	if r.State == jobstore.StatePending || r.State == jobstore.StateFailed {
		if t.unknown == nil {
			t.unknown = map[string]JobID{}
		}
		if _, seen := t.unknown[r.BatchSystem]; !seen {
			t.unknown[r.BatchSystem] = r.ID
		}
	}
	return 0
}

// missing returns an error naming a job of the stored workflow that was
// routed to a batch system the leader does not have, if there is one.
func (g *graph) missingRoute() error {
	t := &g.routes
	if len(t.unknown) == 0 {
		return nil
	}
	name := slices.Min(slices.Collect(maps.Keys(t.unknown)))
	id := t.unknown[name]
	what := "this leader has one batch system (Config.BatchSystem)"
	if t.several() {
		what = "Config.BatchSystems has " + t.list()
	}
	job := id.String()
	if j := g.jobs.get(id); j != nil {
		job = j.display()
	}
	return fmt.Errorf("gaffer: job %s was routed to batch system %q, which this leader does not have (%s); "+
		"a job keeps its batch system for life: give the leader one of that name", job, name, what)
}

// list names the batch systems for an error.
func (t *routeTable) list() string {
	q := make([]string, 0, len(t.names)-1)
	for _, n := range t.names[1:] {
		q = append(q, fmt.Sprintf("%q", n))
	}
	return strings.Join(q, ", ")
}

// route chooses j's batch system if it has none yet: by the rule, else
// the job's own target, else the only batch system. req is what the job
// asks for, defaults filled in. It returns "" or, for a job that no
// batch system of the leader can take, why: the caller fails it for good.
// The choice is written with the job's record.
func (g *graph) route(j *ljob, req Requirements) (refused string) {
	t := &g.routes
	if j.route != 0 || !t.several() {
		return ""
	}
	x := j.extra()
	info := RouteInfo{Job: j.id, Kind: j.kind, Name: x.name, Categories: j.categories(), Requirements: req,
		Target: x.target, Service: x.svc != nil}
	name, how, err := t.choose(info)
	if err != "" {
		return fmt.Sprintf("job %s: %s", j.display(), err)
	}
	k, ok := t.index[name]
	if !ok {
		return fmt.Sprintf("job %s: %s batch system %q, which is not one of Config.BatchSystems (%s)", j.display(), how, name, t.list())
	}
	j.route = k
	g.touch(j)
	return ""
}

// choose applies the rule to info: the name chosen and how, for errors,
// or why none was.
func (t *routeTable) choose(info RouteInfo) (name, how, refused string) {
	if t.rule != nil {
		var err error
		name, err = callRule(t.rule, info)
		if err != nil {
			return "", "", err.Error()
		}
		how = "Config.Route chose"
	}
	if name == "" && info.Target != "" {
		name, how = info.Target, "it asked for (RunOn)"
		if t.rule != nil {
			how = "Config.Route left the choice to the job, which asked for (RunOn)"
		}
	}
	if name == "" && len(t.names) == 2 {
		name, how = t.names[1], "the only batch system is"
	}
	if name == "" {
		if t.rule != nil {
			return "", "", fmt.Sprintf("no batch system: Config.Route chose none (\"\") and the job asked for none (RunOn); Config.BatchSystems has %s", t.list())
		}
		return "", "", fmt.Sprintf("no batch system: the job asked for none (RunOn) and there is no Config.Route to choose among %s", t.list())
	}
	return name, how, ""
}

// callRule calls the user's rule, turning a panic into an error.
func callRule(rule func(RouteInfo) string, info RouteInfo) (name string, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("Config.Route panicked: %v", p)
		}
	}()
	return rule(info), nil
}

// routedTo says, for errors and Why, where j was routed and how: "" for a
// job not routed.
func (g *graph) routedTo(j *ljob) string {
	if j.route == 0 {
		return ""
	}
	return fmt.Sprintf("batch system %q", g.routes.name(j.route))
}

// how says how j's batch system was chosen, for errors.
func (t *routeTable) how(j *ljob) string {
	switch {
	case t.rule != nil:
		return "routed by Config.Route"
	case j.extra().target != "":
		return "asked for with RunOn"
	}
	return "the only one of Config.BatchSystems"
}

// record fills r with j's record, its route included.
func (g *graph) record(j *ljob, r *jobstore.Job) *jobstore.Job {
	j.record(r)
	r.BatchSystem = g.routes.name(j.route)
	return r
}
