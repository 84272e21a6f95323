package scaler

import "time"

// RuntimeModel learns how long jobs run: a running mean of the wall time
// of completed jobs, per kind and over all kinds, as Toil does.
// The zero value is ready; it is not safe for concurrent use.
type RuntimeModel struct {
	// Default is the runtime of every job before any job completed. 0
	// means DefaultRuntime.
	Default time.Duration

	kinds map[string]*mean
	all   mean
}

type mean struct {
	secs float64 // float seconds, as Toil keeps them, so both agree
	n    int
}

func (m *mean) add(wall time.Duration) {
	m.secs = (m.secs*float64(m.n) + wall.Seconds()) / float64(m.n+1)
	m.n++
}

// Observe records that a job of the given kind ran for wall.
func (m *RuntimeModel) Observe(kind string, wall time.Duration) {
	if m.kinds == nil {
		m.kinds = map[string]*mean{}
	}
	k := m.kinds[kind]
	if k == nil {
		k = &mean{}
		m.kinds[kind] = k
	}
	k.add(wall)
	m.all.add(wall)
}

// Runtime estimates how long a job of the given kind runs: the mean for
// its kind; for a kind never seen, the mean over all kinds; before any job
// completed (or if every job took no time), Default.
func (m *RuntimeModel) Runtime(kind string) time.Duration {
	if k, ok := m.kinds[kind]; ok {
		return secs(k.secs)
	}
	if m.all.secs > 0 {
		return secs(m.all.secs)
	}
	if m.Default == 0 {
		return DefaultRuntime
	}
	return m.Default
}

// Seen reports how many jobs of the kind completed.
func (m *RuntimeModel) Seen(kind string) int {
	if k, ok := m.kinds[kind]; ok {
		return k.n
	}
	return 0
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
