package gaffertest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/batchsystem/local"
)

// The jobs leave marks, one line each, in the file named by envMarks:
// what happened, the job's ID, the phase (which leader issued it) and the
// process. Lines are short single O_APPEND writes, so lines of concurrent
// workers do not mix, and the file's order is the order of the events.
const (
	envMarks = "GAFFERTEST_MARKS"
	envPhase = "GAFFERTEST_PHASE"
	envChild = "GAFFERTEST_CHILD_LEADER" // the dir of the leader to be killed
)

func contextBackground() context.Context { return context.Background() }

func newInProcess(t *testing.T) batchsystem.BatchSystem {
	s, err := local.New(local.Options{Mode: local.InProcess, Cores: 2, Memory: 1 << 30, Disk: 1 << 30})
	if err != nil {
		t.Fatalf("local.New: %v", err)
	}
	return s
}

func mark(what string, jc *gaffer.JobContext, extra ...any) {
	f, err := os.OpenFile(os.Getenv(envMarks), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	line := fmt.Sprintf("%s %d %s %d %d", what, jc.ID(), os.Getenv(envPhase), os.Getpid(), jc.Attempt())
	for _, x := range extra {
		line += fmt.Sprint(" ", x)
	}
	_, _ = f.WriteString(line + "\n")
}

type markLine struct {
	what    string
	job     uint64
	phase   string
	pid     int
	attempt int
}

func readMarks(t *testing.T, path string) []markLine {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatalf("reading marks: %v", err)
	}
	defer f.Close()
	var out []markLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m markLine
		if n, _ := fmt.Sscanf(sc.Text(), "%s %d %s %d %d", &m.what, &m.job, &m.phase, &m.pid, &m.attempt); n == 5 {
			out = append(out, m)
		}
	}
	return out
}

func count(marks []markLine, what string) int {
	n := 0
	for _, m := range marks {
		if m.what == what {
			n++
		}
	}
	return n
}

var small = []gaffer.JobOption{gaffer.Cores(0.1), gaffer.Memory("16Mi"), gaffer.Disk("1Mi")}

// Square marks that it ran and returns its input squared.
var Square = gaffer.MustRegister("gaffertest.square", func(ctx context.Context, jc *gaffer.JobContext, x int) (int, error) {
	mark("square", jc)
	return x * x, nil
}, small...)

// Sum marks that it ran and adds its inputs.
var Sum = gaffer.MustRegister("gaffertest.sum", func(ctx context.Context, jc *gaffer.JobContext, xs []int) (int, error) {
	mark("sum", jc)
	total := 0
	for _, x := range xs {
		total += x
	}
	return total, nil
}, small...)

// FanOut adds n Square children and one Sum that every child precedes (a
// join of n predecessors) and that takes their results; its value is the
// sum's.
var FanOut = gaffer.MustRegister("gaffertest.fanout", func(ctx context.Context, jc *gaffer.JobContext, n int) (int, error) {
	parts := make([]gaffer.Input[int], n)
	squares := make([]*gaffer.Job[int], n)
	for i := range n {
		squares[i] = Square.New(i)
		jc.AddChild(squares[i])
		parts[i] = squares[i].Result()
	}
	sum := Sum.NewFrom(gaffer.Collect(parts...))
	for _, sq := range squares {
		sq.AddChild(sum)
	}
	return gaffer.Forward(jc, sum.Result())
}, small...)

// Flaky fails its first attempt and succeeds on its second.
var Flaky = gaffer.MustRegister("gaffertest.flaky", func(ctx context.Context, jc *gaffer.JobContext, _ struct{}) (int, error) {
	mark("flaky", jc)
	if jc.Attempt() == 1 {
		return 0, errors.New("flaky fails its first attempt")
	}
	return 1, nil
}, small...)

// Doomed fails every attempt.
var Doomed = gaffer.MustRegister("gaffertest.doomed", func(ctx context.Context, jc *gaffer.JobContext, _ struct{}) (int, error) {
	mark("doomed", jc)
	fmt.Fprintln(os.Stderr, "doomed writes to its log")
	return 0, errors.New("doomed on purpose")
}, small...)

// Never follows Doomed and so must never run.
var Never = gaffer.MustRegister("gaffertest.never", func(ctx context.Context, jc *gaffer.JobContext, _ struct{}) (int, error) {
	mark("never", jc)
	return 0, nil
}, small...)

// Failing has a Flaky child and a Doomed child, which has a Never child.
var Failing = gaffer.MustRegister("gaffertest.failing", func(ctx context.Context, jc *gaffer.JobContext, _ struct{}) (int, error) {
	jc.AddChild(Flaky.New(struct{}{}))
	d := Doomed.New(struct{}{}, gaffer.Name("doomed"))
	jc.AddChild(d)
	d.AddChild(Never.New(struct{}{}))
	return 0, nil
}, small...)

// Sleep marks its start, sleeps (until its context ends), marks its end
// and returns its value.
var Sleep = gaffer.MustRegister("gaffertest.sleep", func(ctx context.Context, jc *gaffer.JobContext, in SleepInput) (int, error) {
	mark("start", jc)
	select {
	case <-time.After(in.For):
	case <-ctx.Done():
		mark("stopped", jc)
		return 0, ctx.Err()
	}
	mark("end", jc)
	return in.Value, nil
}, small...)

// SleepInput is Sleep's input.
type SleepInput struct {
	For   time.Duration
	Value int
}

// Sleepers adds one Sleep child per input and a follow-on that sums their
// values; its value is the sum's.
var Sleepers = gaffer.MustRegister("gaffertest.sleepers", func(ctx context.Context, jc *gaffer.JobContext, in []SleepInput) (int, error) {
	parts := make([]gaffer.Input[int], len(in))
	for i, s := range in {
		j := Sleep.New(s)
		jc.AddChild(j)
		parts[i] = j.Result()
	}
	sum := Sum.NewFrom(gaffer.Collect(parts...))
	jc.AddFollowOn(sum)
	return gaffer.Forward(jc, sum.Result())
}, small...)

// lines renders marks for a failure message.
func lines(marks []markLine) string {
	var b strings.Builder
	for _, m := range marks {
		fmt.Fprintf(&b, "\n  %s job %d phase %s pid %d attempt %d", m.what, m.job, m.phase, m.pid, m.attempt)
	}
	return b.String()
}
