package gaffer

import (
	"fmt"

	"github.com/gafferhq/gaffer/jobstore"
)

// catLimits holds back jobs whose categories are at their caps
// (Config.CategoryLimits), as Galaxy caps jobs per user and per runner.
// Each held job waits in the queue of one full category; when a job of
// that category ends, the first one waiting goes back to the ready queue
// and is checked again (it may then wait on another category). Costs are
// O(categories of the job) per issue and per end; a nil *catLimits (no
// limits configured) holds nothing.
type catLimits struct {
	limit   map[string]int
	issued  map[string]int
	waiting map[string]*ljobQueue
}

func newCatLimits(limits map[string]int) *catLimits {
	if len(limits) == 0 {
		return nil
	}
	return &catLimits{limit: limits, issued: map[string]int{}, waiting: map[string]*ljobQueue{}}
}

// full returns the first of j's categories that is at its cap.
func (c *catLimits) full(j *ljob) (string, bool) {
	if c == nil {
		return "", false
	}
	for _, name := range j.categories() {
		if n, capped := c.limit[name]; capped && c.issued[name] >= n {
			return name, true
		}
	}
	return "", false
}

// admit takes a place for j in each of its categories, or, if one is
// full, queues j and returns false. Places are taken when a job is picked
// for issue, not when the batch system accepts it, so that one batch
// cannot overrun a cap; release gives them back.
func (c *catLimits) admit(j *ljob) bool {
	name, full := c.full(j)
	if !full {
		c.take(j)
		return true
	}
	q := c.waiting[name]
	if q == nil {
		q = &ljobQueue{}
		c.waiting[name] = q
	}
	q.push(j)
	j.where = inLimit
	return false
}

func (c *catLimits) take(j *ljob) {
	if c == nil {
		return
	}
	for _, name := range j.categories() {
		c.issued[name]++
	}
}

// release counts j's end and returns the jobs that may now go.
func (c *catLimits) release(jobs *jobIndex, j *ljob) []*ljob {
	if c == nil {
		return nil
	}
	var out []*ljob
	for _, name := range j.categories() {
		c.issued[name]--
		if q := c.waiting[name]; q != nil {
			// Skip entries gone stale: a job cancelled or removed
			// while it waited must not take the place.
			if w := q.pop(jobs, func(w *ljob) bool { return w.where == inLimit && w.state == jobstore.StatePending }); w != nil {
				out = append(out, w)
			}
		}
	}
	return out
}

// why explains a job held back by a limit.
func (c *catLimits) why(j *ljob) string {
	name, full := c.full(j)
	if !full {
		return "held back by a category limit that has room again; it is issued at the next turn"
	}
	return fmt.Sprintf("limit reached: category %q has %d of %d issued (Config.CategoryLimits)", name, c.issued[name], c.limit[name])
}

// unreserve gives back j's places in its categories and lets the jobs
// waiting for them go.
func (g *graph) unreserve(j *ljob) {
	for _, w := range g.cats.release(&g.jobs, j) {
		if w.where == inLimit && w.state == jobstore.StatePending {
			w.where = nowhere
			g.makeReady(w)
		}
	}
}
