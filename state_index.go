package gaffer

import "iter"

// jobIndex finds a live job by ID. Job IDs come from one sequence and
// most jobs live briefly, so the live ones crowd a window of IDs: the
// index is a slice of pages of indexPage IDs each, counted from the page
// of the lowest ID it has held, and a page is let go once its last job
// is removed. A map would cost a hash per lookup and, since Go maps
// never shrink, keep the size of a fan-out's million jobs to the end.
//
// The zero value is an empty index.
type jobIndex struct {
	base  JobID // first ID of pages[0]
	pages []*jobPage
	n     int
}

const indexPage = 256

type jobPage struct {
	live int
	jobs [indexPage]*ljob
}

// get returns the job with ID id, or nil.
func (x *jobIndex) get(id JobID) *ljob {
	if id < x.base {
		return nil
	}
	k := (id - x.base) / indexPage
	if k >= JobID(len(x.pages)) || x.pages[k] == nil {
		return nil
	}
	return x.pages[k].jobs[id%indexPage]
}

// put adds j under its ID, or replaces the job there.
func (x *jobIndex) put(j *ljob) {
	start := j.id - j.id%indexPage
	switch {
	case len(x.pages) == 0:
		x.base = start
	case start < x.base:
		// An ID below the window (a load in no particular order): widen
		// it downwards.
		grow := int((x.base - start) / indexPage)
		x.pages = append(make([]*jobPage, grow, grow+len(x.pages)), x.pages...)
		x.base = start
	}
	k := int((start - x.base) / indexPage)
	for k >= len(x.pages) {
		x.pages = append(x.pages, nil)
	}
	p := x.pages[k]
	if p == nil {
		p = &jobPage{}
		x.pages[k] = p
	}
	slot := &p.jobs[j.id%indexPage]
	if *slot == nil {
		p.live++
		x.n++
	}
	*slot = j
}

// del removes the job with ID id, if there is one.
func (x *jobIndex) del(id JobID) {
	if id < x.base {
		return
	}
	k := int((id - x.base) / indexPage)
	if k >= len(x.pages) || x.pages[k] == nil {
		return
	}
	p := x.pages[k]
	slot := &p.jobs[id%indexPage]
	if *slot == nil {
		return
	}
	*slot = nil
	x.n--
	if p.live--; p.live > 0 {
		return
	}
	x.pages[k] = nil
	// Let the window slide past empty pages at either end, so that its
	// length follows the live IDs and not every ID ever used.
	lead := 0
	for lead < len(x.pages) && x.pages[lead] == nil {
		lead++
	}
	if lead == len(x.pages) {
		x.pages, x.base = x.pages[:0], 0
		return
	}
	end := len(x.pages)
	for x.pages[end-1] == nil {
		end--
	}
	// Slicing from the front shrinks the capacity, so the next append
	// that needs room copies the window to a new array and lets the dead
	// front go.
	x.pages = x.pages[lead:end]
	x.base += JobID(lead) * indexPage
}

// len returns the number of jobs in the index.
func (x *jobIndex) len() int { return x.n }

// all yields the jobs in ID order.
func (x *jobIndex) all() iter.Seq2[JobID, *ljob] {
	return func(yield func(JobID, *ljob) bool) {
		for _, p := range x.pages {
			if p == nil {
				continue
			}
			for _, j := range p.jobs {
				if j != nil && !yield(j.id, j) {
					return
				}
			}
		}
	}
}
