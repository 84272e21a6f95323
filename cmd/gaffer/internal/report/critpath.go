package report

import "time"

// criticalPath returns the jobs (indexes into d.jobs) of the longest
// path by wall time through the predecessors the records name, first job
// first, and its length. A job's cost is the wall time of all its
// attempts (a retry lengthens the path). It is a pass over the jobs in
// topological order (Kahn's), O(jobs + edges).
//
// Preds are the edges a job was added with: a follow-on's predecessor is
// its parent, so the wait for the parent's children is not on the path.
func (d *data) criticalPath() ([]int, time.Duration) {
	n := len(d.jobs)
	if n == 0 {
		return nil, 0
	}
	indeg := make([]int32, n)
	start := make([]int32, n+1) // successors of i: succ[start[i]:start[i+1]]
	for i := range d.jobs {
		for _, p := range d.jobs[i].preds {
			if k := d.index(p); k >= 0 {
				start[k+1]++
				indeg[i]++
			}
		}
	}
	for i := range n {
		start[i+1] += start[i]
	}
	succ := make([]int32, start[n])
	fill := make([]int32, n)
	copy(fill, start[:n])
	for i := range d.jobs {
		for _, p := range d.jobs[i].preds {
			if k := d.index(p); k >= 0 {
				succ[fill[k]] = int32(i)
				fill[k]++
			}
		}
	}
	best := make([]time.Duration, n)
	from := make([]int32, n)
	queue := make([]int32, 0, n)
	for i := range n {
		from[i] = -1
		best[i] = d.jobs[i].cost
		if indeg[i] == 0 {
			queue = append(queue, int32(i))
		}
	}
	for q := 0; q < len(queue); q++ {
		i := queue[q]
		for _, s := range succ[start[i]:start[i+1]] {
			if c := best[i] + d.jobs[s].cost; c > best[s] || from[s] < 0 {
				best[s], from[s] = c, i
			}
			indeg[s]--
			if indeg[s] == 0 {
				queue = append(queue, s)
			}
		}
	}
	end := 0
	for i := range n {
		if best[i] > best[end] {
			end = i
		}
	}
	var path []int
	for i := int32(end); i >= 0; i = from[i] {
		path = append(path, int(i))
		if len(path) > n {
			break // a cycle in damaged records
		}
	}
	for a, b := 0, len(path)-1; a < b; a, b = a+1, b-1 {
		path[a], path[b] = path[b], path[a]
	}
	return path, best[end]
}
