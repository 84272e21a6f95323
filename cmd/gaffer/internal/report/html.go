package report

import (
	"bufio"
	"context"
	"fmt"
	"html"
	"io"
	"slices"
	"sort"
	"strings"
	"time"
)

// MaxBars is the most attempts the timeline draws one bar each; with
// more, it counts running attempts per time bin and job type.
const MaxBars = 2000

// timeBins is how many bins the aggregate timeline has.
const timeBins = 200

// WriteHTML writes a self-contained HTML report of the workflow stored at
// storePath: no scripts, no external resources; the charts are inline
// SVG. Its size does not grow with the number of jobs beyond a few
// tables capped in length.
func WriteHTML(ctx context.Context, storePath string, w io.Writer) error {
	d, err := load(ctx, storePath)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	d.writeHTML(bw, storePath)
	return bw.Flush()
}

var palette = []string{"#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#bab0ac", "#e15759"}

func color(kind int32) string { return palette[int(kind)%len(palette)] }

func esc(s string) string { return html.EscapeString(s) }

const css = `body{font-family:sans-serif;margin:24px;color:#222;max-width:1300px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}.fail{color:#c00}svg{display:block;margin:8px 0}
svg text{font-size:11px;font-family:sans-serif}.note{color:#666;font-size:13px}`

func (d *data) writeHTML(w *bufio.Writer, storePath string) {
	m := d.meta
	title := "gaffer report: " + m.RootKind
	fmt.Fprintf(w, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>%s</title><style>%s</style></head><body>\n", esc(title), css)
	fmt.Fprintf(w, "<h1>%s</h1>\n", esc(title))
	retried := 0
	for i := range d.jobs {
		if d.jobs[i].attempts > 1 {
			retried++
		}
	}
	lo, hi := d.span()
	w.WriteString("<table>\n")
	row := func(k, v string) { fmt.Fprintf(w, "<tr><th class=l>%s</th><td class=l>%s</td></tr>\n", esc(k), esc(v)) }
	row("Store", storePath)
	row("Workflow", m.WorkflowID)
	row("Status", m.Status.String())
	row("Root type", m.RootKind)
	row("Created", m.Created.Format(time.RFC3339))
	if hi > lo {
		row("Ran", fmt.Sprintf("%s to %s (%s)", time.Unix(0, lo).UTC().Format(time.RFC3339), time.Unix(0, hi).UTC().Format(time.RFC3339), dur(time.Duration(hi-lo))))
	}
	row("Jobs with attempts", fmt.Sprint(d.jobsRan()))
	row("Attempts", fmt.Sprint(len(d.attempts)))
	row("Failed attempts", fmt.Sprint(d.nFailed))
	row("Jobs run more than once", fmt.Sprint(retried))
	if live := d.liveStates(); live != "" {
		row("Jobs still stored", live)
	}
	w.WriteString("</table>\n")

	w.WriteString("<h2>Timeline</h2>\n")
	d.writeTimeline(w, lo, hi)
	w.WriteString("<h2>Job types</h2>\n")
	d.writeKinds(w)
	w.WriteString("<h2>Failures and retries</h2>\n")
	d.writeFailures(w)
	w.WriteString("<h2>Critical path</h2>\n")
	d.writeCriticalPath(w)
	w.WriteString("</body></html>\n")
}

func (d *data) jobsRan() int {
	n := 0
	for i := range d.jobs {
		if d.jobs[i].attempts > 0 {
			n++
		}
	}
	return n
}

func (d *data) liveStates() string {
	counts := map[string]int{}
	for i := range d.jobs {
		if s := d.jobs[i].state; s != 0 {
			counts[s.String()]++
		}
	}
	var parts []string
	for k, v := range counts {
		parts = append(parts, fmt.Sprintf("%s: %d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// span is the first start and the last end of the attempts that have
// both.
func (d *data) span() (lo, hi int64) {
	for i := range d.attempts {
		a := &d.attempts[i]
		if a.start == 0 || a.end < a.start {
			continue
		}
		if lo == 0 || a.start < lo {
			lo = a.start
		}
		if a.end > hi {
			hi = a.end
		}
	}
	return lo, hi
}

func dur(x time.Duration) string {
	switch {
	case x >= time.Hour:
		return x.Round(time.Second).String()
	case x >= time.Second:
		return x.Round(10 * time.Millisecond).String()
	case x >= time.Millisecond:
		return x.Round(10 * time.Microsecond).String()
	}
	return x.String()
}

func bytesStr(b float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	return fmt.Sprintf("%.3g %s", b, units[i])
}

// legend writes the job types' colours inside an SVG at y.
func (d *data) legend(w *bufio.Writer, x, y float64) {
	for k, name := range d.kinds {
		fmt.Fprintf(w, `<rect x="%.0f" y="%.0f" width="10" height="10" fill="%s"/><text x="%.0f" y="%.0f">%s</text>`+"\n", x, y-9, color(int32(k)), x+14, y, esc(name))
		x += 24 + 7*float64(len(name))
	}
}

const (
	chartW = 1200.0
	left   = 170.0
)

func (d *data) timeAxis(w *bufio.Writer, lo, hi int64, y float64) {
	for t := range 6 {
		x := left + (chartW-left-10)*float64(t)/5
		off := time.Duration(float64(hi-lo) * float64(t) / 5)
		fmt.Fprintf(w, `<line x1="%.1f" x2="%.1f" y1="20" y2="%.0f" stroke="#eee"/><text x="%.1f" y="%.0f" text-anchor="middle">+%s</text>`+"\n", x, x, y, x, y+14, esc(dur(off)))
	}
}

func (d *data) writeTimeline(w *bufio.Writer, lo, hi int64) {
	if hi <= lo {
		w.WriteString("<p class=note>No attempt has a start and an end time.</p>\n")
		return
	}
	timed := 0
	for i := range d.attempts {
		if a := &d.attempts[i]; a.start != 0 && a.end >= a.start {
			timed++
		}
	}
	if timed <= MaxBars && d.writeBars(w, lo, hi) {
		return
	}
	d.writeBins(w, lo, hi)
}

// writeBars draws one bar per attempt, in rows by node, each node's
// attempts packed into as many lanes as overlap. It returns false, and
// draws nothing, when there would be too many lanes to read.
func (d *data) writeBars(w *bufio.Writer, lo, hi int64) bool {
	byNode := map[string][]int{}
	for i := range d.attempts {
		if a := &d.attempts[i]; a.start != 0 && a.end >= a.start {
			byNode[a.node] = append(byNode[a.node], i)
		}
	}
	nodes := make([]string, 0, len(byNode))
	for n := range byNode {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	type lane struct {
		node  string
		first bool
		bars  []int
	}
	var lanes []lane
	for _, n := range nodes {
		idx := byNode[n]
		slices.SortFunc(idx, func(a, b int) int { return int(d.attempts[a].start - d.attempts[b].start) })
		var ends []int64
		base := len(lanes)
		for _, i := range idx {
			a := &d.attempts[i]
			l := -1
			for k, e := range ends {
				if e <= a.start {
					l = k
					break
				}
			}
			if l < 0 {
				l = len(ends)
				ends = append(ends, 0)
				lanes = append(lanes, lane{node: n, first: l == 0})
			}
			ends[l] = a.end
			lanes[base+l].bars = append(lanes[base+l].bars, i)
		}
	}
	if len(lanes) > 400 {
		return false
	}
	rowH := 14.0
	if len(lanes) > 60 {
		rowH = 5
	}
	top := 40.0
	height := top + rowH*float64(len(lanes)) + 30
	scale := (chartW - left - 10) / float64(hi-lo)
	fmt.Fprintf(w, "<p class=note>One bar per attempt (%d), in rows by node; a red outline marks a failed attempt. Hover a bar for the job.</p>\n", len(d.attempts))
	fmt.Fprintf(w, `<svg width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-label="timeline">`+"\n", chartW, height, chartW, height)
	d.legend(w, left, 14)
	d.timeAxis(w, lo, hi, height-16)
	for r, l := range lanes {
		y := top + rowH*float64(r)
		if l.first {
			fmt.Fprintf(w, `<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y+rowH-2, esc(trunc(l.node, 26)))
			fmt.Fprintf(w, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#ccc"/>`+"\n", left, chartW-10, y, y)
		}
		for _, i := range l.bars {
			a := &d.attempts[i]
			x := left + float64(a.start-lo)*scale
			bw := max(float64(a.end-a.start)*scale, 1)
			stroke := ""
			if !a.ok {
				stroke = ` stroke="#c00" stroke-width="1.5"`
			}
			fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"%s><title>%s j%d attempt %d: %s</title></rect>`+"\n",
				x, y+0.5, bw, rowH-1, color(a.kind), stroke, esc(d.kinds[a.kind]), uint64(a.job), a.n, esc(dur(a.wall)))
		}
	}
	w.WriteString("</svg>\n")
	return true
}

func trunc(s string, n int) string {
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

// writeBins draws, per time bin, how many attempts of each job type ran
// during it, stacked: the size does not depend on the number of jobs.
func (d *data) writeBins(w *bufio.Writer, lo, hi int64) {
	nk := len(d.kinds)
	// Difference arrays: +1 at an attempt's first bin, -1 after its last.
	diff := make([][]int, nk)
	for k := range diff {
		diff[k] = make([]int, timeBins+1)
	}
	width := float64(hi-lo) / timeBins
	bin := func(t int64) int { return min(int(float64(t-lo)/width), timeBins-1) }
	for i := range d.attempts {
		a := &d.attempts[i]
		if a.start == 0 || a.end < a.start {
			continue
		}
		diff[a.kind][bin(a.start)]++
		diff[a.kind][bin(a.end)+1]--
	}
	counts := make([][]int, nk)
	peak := 1
	total := make([]int, timeBins)
	for k := range counts {
		counts[k] = make([]int, timeBins)
		run := 0
		for b := range timeBins {
			run += diff[k][b]
			counts[k][b] = run
			total[b] += run
		}
	}
	for _, t := range total {
		peak = max(peak, t)
	}
	fmt.Fprintf(w, "<p class=note>%d attempts: too many for a bar each. Each of %d time bins (%s wide) shows how many attempts of each job type ran during it, stacked; the peak is %d.</p>\n",
		len(d.attempts), timeBins, esc(dur(time.Duration(width))), peak)
	const plotH = 300.0
	top := 40.0
	height := top + plotH + 30
	fmt.Fprintf(w, `<svg width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-label="timeline">`+"\n", chartW, height, chartW, height)
	d.legend(w, left, 14)
	d.timeAxis(w, lo, hi, height-16)
	fmt.Fprintf(w, `<text x="%.0f" y="%.0f" text-anchor="end">%d running</text><text x="%.0f" y="%.0f" text-anchor="end">0</text>`+"\n", left-6, top+8, peak, left-6, top+plotH)
	bx := (chartW - left - 10) / timeBins
	base := make([]float64, timeBins)
	for k := range counts {
		for b, c := range counts[k] {
			if c == 0 {
				continue
			}
			h := plotH * float64(c) / float64(peak)
			y := top + plotH - base[b] - h
			fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%.2f" height="%.1f" fill="%s"><title>%s: %d</title></rect>`+"\n",
				left+bx*float64(b), y, bx, h, color(int32(k)), esc(d.kinds[k]), c)
			base[b] += h
		}
	}
	w.WriteString("</svg>\n")
}

type stats struct {
	jobs, attempts, failed, retried int
	wall, cpu, rss                  []float64
}

func (d *data) kindStats() []stats {
	st := make([]stats, len(d.kinds))
	for i := range d.jobs {
		j := &d.jobs[i]
		if j.attempts > 0 {
			st[j.kind].jobs++
		}
		if j.attempts > 1 {
			st[j.kind].retried++
		}
	}
	for i := range d.attempts {
		a := &d.attempts[i]
		s := &st[a.kind]
		s.attempts++
		if !a.ok {
			s.failed++
		}
		s.wall = append(s.wall, a.wall.Seconds())
		if a.cpu > 0 {
			s.cpu = append(s.cpu, a.cpu.Seconds())
		}
		if a.rss > 0 {
			s.rss = append(s.rss, float64(a.rss))
		}
	}
	for k := range st {
		slices.Sort(st[k].wall)
		slices.Sort(st[k].cpu)
		slices.Sort(st[k].rss)
	}
	return st
}

func secs(v float64) string { return dur(time.Duration(v * float64(time.Second))) }

func mmm(xs []float64, f func(float64) string) string {
	if len(xs) == 0 {
		return "–"
	}
	return f(xs[0]) + " / " + f(xs[len(xs)/2]) + " / " + f(xs[len(xs)-1])
}

func (d *data) writeKinds(w *bufio.Writer) {
	st := d.kindStats()
	w.WriteString("<table><tr><th class=l>Job type</th><th>Jobs</th><th>Attempts</th><th>Failed attempts</th><th>Jobs retried</th><th>Wall min / median / max</th><th>CPU min / median / max</th><th>Peak memory min / median / max</th></tr>\n")
	for k, name := range d.kinds {
		s := &st[k]
		fmt.Fprintf(w, "<tr><td class=l><span style=\"color:%s\">■</span> %s</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%s</td><td>%s</td><td>%s</td></tr>\n",
			color(int32(k)), esc(name), s.jobs, s.attempts, s.failed, s.retried, esc(mmm(s.wall, secs)), esc(mmm(s.cpu, secs)), esc(mmm(s.rss, bytesStr)))
	}
	w.WriteString("</table>\n<p class=note>Histograms of each job type's attempts: wall time, CPU time, peak memory (attempts without a figure are left out).</p>\n")
	const hw, hh = 300.0, 70.0
	height := 30 + (hh+36)*float64(len(d.kinds))
	fmt.Fprintf(w, `<svg width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-label="distributions">`+"\n", left+3*(hw+30), height, left+3*(hw+30), height)
	for i, t := range []string{"wall time", "CPU time", "peak memory"} {
		fmt.Fprintf(w, `<text x="%.0f" y="14" font-weight="bold">%s</text>`+"\n", left+float64(i)*(hw+30), t)
	}
	for k, name := range d.kinds {
		y := 30 + (hh+36)*float64(k)
		fmt.Fprintf(w, `<text x="%.0f" y="%.0f" text-anchor="end">%s</text>`+"\n", left-8, y+hh/2, esc(trunc(name, 26)))
		s := &st[k]
		for i, xs := range [][]float64{s.wall, s.cpu, s.rss} {
			f := secs
			if i == 2 {
				f = bytesStr
			}
			histogram(w, xs, left+float64(i)*(hw+30), y, hw, hh, color(int32(k)), f)
		}
	}
	w.WriteString("</svg>\n")
}

// histogram draws sorted values xs in 30 bins between their min and max.
func histogram(w *bufio.Writer, xs []float64, x, y, hw, hh float64, fill string, f func(float64) string) {
	fmt.Fprintf(w, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#ddd"/>`+"\n", x, y, hw, hh)
	if len(xs) == 0 {
		fmt.Fprintf(w, `<text x="%.0f" y="%.0f" fill="#999">no figures</text>`+"\n", x+8, y+hh/2)
		return
	}
	const nb = 30
	var bins [nb]int
	lo, hi := xs[0], xs[len(xs)-1]
	for _, v := range xs {
		b := nb - 1
		if hi > lo {
			b = min(int((v-lo)/(hi-lo)*nb), nb-1)
		}
		bins[b]++
	}
	peak := slices.Max(bins[:])
	bw := hw / nb
	for b, c := range bins {
		if c == 0 {
			continue
		}
		h := (hh - 4) * float64(c) / float64(peak)
		fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%d</title></rect>`+"\n", x+bw*float64(b), y+hh-h, bw-0.5, h, fill, c)
	}
	fmt.Fprintf(w, `<text x="%.0f" y="%.0f">%s</text><text x="%.0f" y="%.0f" text-anchor="end">%s</text>`+"\n", x, y+hh+13, esc(f(lo)), x+hw, y+hh+13, esc(f(hi)))
}

func (d *data) writeFailures(w *bufio.Writer) {
	if d.nFailed == 0 {
		w.WriteString("<p>No attempt failed.</p>\n")
		return
	}
	fmt.Fprintf(w, "<p>%d failed attempts", d.nFailed)
	if d.nFailed > len(d.failures) {
		fmt.Fprintf(w, "; the first %d:", len(d.failures))
	}
	w.WriteString("</p>\n<table><tr><th class=l>Job</th><th class=l>Type</th><th>Attempt</th><th class=l>Where</th><th class=l>Reason</th><th>Exit</th><th class=l>Error</th></tr>\n")
	for _, f := range d.failures {
		where := f.node
		if f.batchID != "" {
			where += " " + f.batchSys + ":" + f.batchID
		}
		fmt.Fprintf(w, "<tr><td class=l>%s</td><td class=l>%s</td><td>%d</td><td class=l>%s</td><td class=l>%s</td><td>%d</td><td class=\"l fail\">%s</td></tr>\n",
			esc(f.job.String()), esc(f.kind), f.n, esc(where), esc(f.reason), f.exit, esc(trunc(f.err, 300)))
	}
	w.WriteString("</table>\n")
}

func (d *data) writeCriticalPath(w *bufio.Writer) {
	path, total := d.criticalPath()
	if len(path) == 0 {
		w.WriteString("<p>No jobs.</p>\n")
		return
	}
	fmt.Fprintf(w, "<p>The longest chain of jobs by wall time through their predecessors: %d jobs, %s. (A follow-on's predecessor is its parent: the wait for the parent's children is not counted; a job's retries are.)</p>\n", len(path), esc(dur(total)))
	const h = 26.0
	shown := path
	if len(shown) > 200 {
		shown = shown[:200]
	}
	fmt.Fprintf(w, `<svg width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-label="critical path">`+"\n", chartW, h+24, chartW, h+24)
	x := 10.0
	for _, i := range shown {
		j := &d.jobs[i]
		bw := 0.0
		if total > 0 {
			bw = (chartW - 20) * float64(j.cost) / float64(total)
		}
		fmt.Fprintf(w, `<rect x="%.1f" y="4" width="%.1f" height="%.0f" fill="%s" stroke="#fff"><title>%s %s: %s</title></rect>`+"\n", x, max(bw, 1), h, color(j.kind), esc(d.kinds[j.kind]), j.id, esc(dur(j.cost)))
		if bw > 60 {
			fmt.Fprintf(w, `<text x="%.1f" y="%.0f" fill="#fff">%s</text>`+"\n", x+4, 4+h/2+4, esc(trunc(d.kinds[j.kind], int(bw/7))))
		}
		x += bw
	}
	w.WriteString("</svg>\n<table><tr><th>#</th><th class=l>Job</th><th class=l>Type</th><th>Attempts</th><th>Wall</th></tr>\n")
	for n, i := range shown {
		j := &d.jobs[i]
		fmt.Fprintf(w, "<tr><td>%d</td><td class=l>%s</td><td class=l>%s</td><td>%d</td><td>%s</td></tr>\n", n+1, esc(j.id.String()+" "+j.name), esc(d.kinds[j.kind]), j.attempts, esc(dur(j.cost)))
	}
	w.WriteString("</table>\n")
}
