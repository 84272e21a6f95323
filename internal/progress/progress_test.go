package progress

import (
	"bytes"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLine(t *testing.T) {
	require.Equal(t, "12,345/50,002 jobs (24.7%), 812 jobs/s, 0 failed, 46s left",
		Line(Figures{Done: 12345, Total: 50002}, 812, false))
	require.Equal(t, "50,002/50,002 jobs (100.0%), 1,234,567 jobs/s, 3 failed",
		Line(Figures{Done: 50002, Total: 50002, Failed: 3}, 1234567, true))
	require.Equal(t, "0/10 jobs (0.0%), 0 jobs/s, 0 failed, time left unknown", Line(Figures{Total: 10}, 0, false))
	require.Equal(t, "7 jobs, 2 jobs/s, 0 failed", Line(Figures{Done: 7}, 2, false))
	require.Equal(t, "-1,000", group(-1000))
	require.Equal(t, "999", group(999))
}

// The rate looks back ten seconds; a terminal's line is rewritten in
// place and ended once; elsewhere each report is a line.
func TestPrinter(t *testing.T) {
	clock := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	var f Figures
	var out bytes.Buffer
	p := newPrinter(&out, "run", true, func() Figures { return f }, now)
	for i := range 30 {
		clock = clock.Add(time.Second)
		f = Figures{Done: 100 * (i + 1), Total: 10000}
		if i >= 20 {
			f.Done = 2000 + 10*(i-19) // slows to 10 jobs/s
		}
		p.print(false)
	}
	require.InDelta(t, 10, p.rate(clock), 0.01, "the last ten seconds' rate")
	p.print(true)
	s := out.String()
	require.Equal(t, 1, strings.Count(s, "\n"), "one line, ended at the end")
	require.True(t, strings.HasSuffix(s, "\n"))
	require.Equal(t, 31, strings.Count(s, "\r"))
	require.Contains(t, s, "\rrun: 100/10,000 jobs (1.0%), 100 jobs/s, 0 failed, 1m39s left")
	require.Contains(t, s, "2,100/10,000 jobs (21.0%), 10 jobs/s, 0 failed, 13m10s left")

	out.Reset()
	p = newPrinter(&out, "run", false, func() Figures { return f }, now)
	clock = clock.Add(time.Second)
	p.print(false)
	p.print(true)
	require.Equal(t, 2, strings.Count(out.String(), "\n"))
	require.NotContains(t, out.String(), "\r")
}

func TestStartStop(t *testing.T) {
	var out safe
	p := Start(&out, "x", false, 5*time.Millisecond, func() Figures { return Figures{Done: 1, Total: 2} })
	time.Sleep(30 * time.Millisecond)
	p.Stop()
	p.Stop()
	require.GreaterOrEqual(t, strings.Count(out.String(), "\n"), 2)
	require.True(t, strings.HasSuffix(out.String(), " jobs/s, 0 failed\n"), "the last line gives no time left: %q", out.String())
}

func TestIsTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	require.NoError(t, err)
	defer f.Close()
	require.False(t, IsTerminal(f), "a file is not a terminal")
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	require.False(t, IsTerminal(w), "a pipe is not a terminal")
}

type safe struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *safe) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(b)
}

func (s *safe) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}
