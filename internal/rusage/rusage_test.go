//go:build unix

package rusage_test

import (
	"testing"

	"github.com/gafferhq/gaffer/internal/rusage"
)

// On Unix both figures are known, and plausible: CPU time grows with
// work, and a Go test binary's peak resident set is over a mebibyte (a
// unit mistake, KiB for bytes, would make it tiny or huge).
func TestFiguresAreKnownAndPlausible(t *testing.T) {
	before, ok := rusage.CPU()
	if !ok {
		t.Fatal("no CPU time")
	}
	x := 0
	for i := range 50_000_000 {
		x += i % 7
	}
	after, _ := rusage.CPU()
	if after <= before {
		t.Fatalf("CPU time did not grow with work: %v then %v (%d)", before, after, x)
	}
	rss, ok := rusage.PeakRSS()
	if !ok || rss < 1<<20 || rss > 1<<40 {
		t.Fatalf("peak RSS %d bytes (known: %v)", rss, ok)
	}
}

// The resident set now is known on Unix, plausible, and no more than the
// peak.
func TestRSSIsPlausible(t *testing.T) {
	now, ok := rusage.RSS()
	peak, _ := rusage.PeakRSS()
	if !ok || now < 1<<20 || now > peak+(1<<20) {
		t.Fatalf("RSS %d bytes (known: %v), peak %d", now, ok, peak)
	}
}
