// Package progress prints a progress line for long runs in the examples
// and commands: done/total, rate, failures and time left.
//
//	fanout: 12,345/50,002 jobs (24.7%), 812 jobs/s, 0 failed, 46s left
//
// On a terminal the line is rewritten in place; elsewhere (a file, a
// pipe) each report is a line of its own, and programs print none unless
// asked (IsTerminal tells them which).
package progress

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
)

// Figures are what a line reports.
type Figures struct {
	Done   int // jobs done
	Total  int // jobs known, done ones included; 0: not known
	Failed int // failed attempts
}

// IsTerminal reports whether f is a terminal (a character device: a
// console, or /dev/null, where a line costs nothing). Pipes and files
// are not.
func IsTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// window is how far back the rate looks.
const window = 10 * time.Second

// Printer prints the line. Make one with Start.
type Printer struct {
	w        io.Writer
	label    string
	tty      bool
	read     func() Figures
	now      func() time.Time
	start    time.Time
	samples  []sample // the last window's, oldest first
	lastLen  int      // of the last line written on a terminal
	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

type sample struct {
	t    time.Time
	done int
}

// Start prints read's figures to w every interval until Stop, starting
// one interval from now; tty says whether w is a terminal.
func Start(w io.Writer, label string, tty bool, interval time.Duration, read func() Figures) *Printer {
	p := newPrinter(w, label, tty, read, time.Now)
	go p.loop(interval)
	return p
}

func newPrinter(w io.Writer, label string, tty bool, read func() Figures, now func() time.Time) *Printer {
	return &Printer{w: w, label: label, tty: tty, read: read, now: now, start: now(),
		stop: make(chan struct{}), done: make(chan struct{})}
}

func (p *Printer) loop(interval time.Duration) {
	defer close(p.done)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			p.print(false)
		case <-p.stop:
			return
		}
	}
}

// Stop prints the last line (ended by a newline) and stops.
func (p *Printer) Stop() {
	p.stopOnce.Do(func() {
		close(p.stop)
		<-p.done
		p.print(true)
	})
}

// print writes one report; last ends a terminal's line.
func (p *Printer) print(last bool) {
	f := p.read()
	now := p.now()
	p.samples = append(p.samples, sample{now, f.Done})
	for len(p.samples) > 2 && now.Sub(p.samples[1].t) >= window {
		p.samples = p.samples[1:]
	}
	line := p.label + ": " + Line(f, p.rate(now), last)
	switch {
	case !p.tty:
		fmt.Fprintln(p.w, line)
	default:
		pad := max(p.lastLen-len(line), 0)
		p.lastLen = len(line)
		end := ""
		if last {
			end = "\n"
		}
		fmt.Fprintf(p.w, "\r%s%*s%s", line, pad, "", end)
	}
}

// rate is jobs per second over the last window (since the start, until
// there are two samples).
func (p *Printer) rate(now time.Time) float64 {
	first := sample{p.start, 0}
	if len(p.samples) > 1 {
		first = p.samples[0]
	}
	last := p.samples[len(p.samples)-1]
	d := last.t.Sub(first.t).Seconds()
	if d <= 0 {
		return 0
	}
	return float64(last.done-first.done) / d
}

// Line formats figures at rate jobs/s; a last line has no time left.
func Line(f Figures, rate float64, last bool) string {
	s := group(f.Done)
	if f.Total > 0 {
		s += "/" + group(f.Total) + " jobs (" + strconv.FormatFloat(100*float64(f.Done)/float64(f.Total), 'f', 1, 64) + "%)"
	} else {
		s += " jobs"
	}
	s += ", " + group(int(rate+0.5)) + " jobs/s, " + group(f.Failed) + " failed"
	switch {
	case last:
	case f.Total > 0 && rate > 0 && f.Done < f.Total:
		left := time.Duration(float64(f.Total-f.Done) / rate * float64(time.Second))
		s += ", " + left.Round(time.Second).String() + " left"
	case f.Total > 0 && f.Done < f.Total:
		s += ", time left unknown"
	}
	return s
}

// group writes n with thousands separated by commas.
func group(n int) string {
	s := strconv.Itoa(n)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}
