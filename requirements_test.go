package gaffer_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer"
)

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{
		// Toil's meanings: binary units are powers of 1024, decimal ones
		// of 1000.
		"2Gi":     2147483648,
		"2G":      2000000000,
		"62.5 Gi": 67108864000,
		"500M":    500000000,
		"1k":      1000,
		"7":       7,
		"1.5Ki":   1536,
		"0":       0,
		"2GiB":    2147483648,
		"2gib":    2147483648,
		"2 GB":    2000000000,
		"1KB":     1000,
		"1KiB":    1024,
		"16Mi":    16 << 20,
		"1T":      1e12,
		"1Ti":     1 << 40,
		"1P":      1e15,
		"1Pi":     1 << 50,
		"1E":      1e18,
		"1Ei":     1 << 60,
		"5B":      5,
		"5 b":     5,
		"  3Mi  ": 3 << 20,
		"0.5":     0, // truncated to whole bytes
		"1.9999":  1,
		"0.5Ki":   512,
		"7.9Ei":   9108079886394091520,
	} {
		got, err := gaffer.ParseBytes(in)
		require.NoError(t, err, "%q", in)
		require.Equal(t, want, got, "%q", in)
	}
}

func TestParseBytesErrors(t *testing.T) {
	for _, in := range []string{
		"", " ", "abc", "5X", "-1G", "-1", "G", "Gi", "1.2.3", "5i", "5iB", "5bi", "1e3", "0x10",
		"Inf", "NaN", "1_000", "1 k b", "2 Gig", "10E", "9.3E", "10000Pi", ".", "+5", "5K5",
	} {
		got, err := gaffer.ParseBytes(in)
		require.Error(t, err, "%q gave %d", in, got)
		require.ErrorIs(t, err, gaffer.ErrBadRequirement, "%q", in)
		require.Contains(t, err.Error(), fmt.Sprintf("%q", in), "the error quotes the input")
		require.Zero(t, got)
	}
}

// 8Ei is 2^63 bytes, one more than an int64 holds.
func TestParseBytesJustBeyondInt64(t *testing.T) {
	for _, in := range []string{"8Ei", "8EiB", "9223372036854775808"} {
		got, err := gaffer.ParseBytes(in)
		require.ErrorIs(t, err, gaffer.ErrBadRequirement, "%q gave %d", in, got)
	}
}

func TestParseBytesNeverNegative(t *testing.T) {
	for _, in := range []string{"0", "1", "1023Pi", "7.99Ei", "9.2E", "9.22E"} {
		got, err := gaffer.ParseBytes(in)
		if err == nil {
			require.GreaterOrEqual(t, got, int64(0), "%q", in)
			require.LessOrEqual(t, got, int64(math.MaxInt64))
		}
	}
}

type reqIn struct{ N int }

var reqLeaf = gaffer.MustRegister("reqtest.leaf", func(ctx context.Context, jc *gaffer.JobContext, in reqIn) (int, error) {
	return in.N, nil
}, gaffer.Cores(0.1), gaffer.Memory("16Mi"), gaffer.Disk("1Mi"))

// reqSpawner adds a child made with the options its input names.
var reqSpawner = gaffer.MustRegister("reqtest.spawner", func(ctx context.Context, jc *gaffer.JobContext, which string) (int, error) {
	jc.AddChild(reqLeaf.New(reqIn{1}, append([]gaffer.JobOption{gaffer.Name("kid")}, badOptions[which])...))
	return 0, nil
}, gaffer.Cores(0.1), gaffer.Memory("16Mi"), gaffer.Disk("1Mi"))

var badOptions = map[string]gaffer.JobOption{
	"cores":        gaffer.Cores(-1),
	"cores NaN":    gaffer.Cores(math.NaN()),
	"cores Inf":    gaffer.Cores(math.Inf(1)),
	"memory":       gaffer.Memory("lots"),
	"disk":         gaffer.Disk("5X"),
	"walltime":     gaffer.Walltime(-time.Second),
	"retries":      gaffer.Retries(-1),
	"accelerators": gaffer.Accelerators("", 1),
	"accel count":  gaffer.Accelerators("gpu", -1),
}

var badOptionText = map[string]string{
	"cores":        "cores -1",
	"cores NaN":    "cores NaN",
	"cores Inf":    "cores +Inf",
	"memory":       `memory: gaffer: bad requirement: size "lots"`,
	"disk":         `disk: gaffer: bad requirement: size "5X": unknown unit "X"`,
	"walltime":     "walltime -1s",
	"retries":      "retries -1",
	"accelerators": "accelerators",
	"accel count":  "accelerators",
}

// A bad option on the root is refused when the workflow is run, naming
// the job, and nothing runs.
func TestBadOptionOnTheRootNamesTheJob(t *testing.T) {
	for which, opt := range badOptions {
		t.Run(which, func(t *testing.T) {
			l, _ := newLeader(t, testOpts{})
			_, err := gaffer.Run(t.Context(), l, reqLeaf.New(reqIn{5}, gaffer.Name("the-root"), opt))
			require.ErrorIs(t, err, gaffer.ErrBadRequirement)
			require.Contains(t, err.Error(), "the-root (new #")
			require.Contains(t, err.Error(), badOptionText[which])
			require.Zero(t, l.Stats().Attempts, "nothing ran")
		})
	}
}

// A bad option on a job made while a job runs fails the running job at
// once, without retries, naming both.
func TestBadOptionOnADynamicChildFailsItsParent(t *testing.T) {
	for _, which := range []string{"cores", "memory", "disk"} {
		t.Run(which, func(t *testing.T) {
			l, _ := newLeader(t, testOpts{})
			_, err := gaffer.Run(t.Context(), l, reqSpawner.New(which, gaffer.Name("spawner")))
			var fe *gaffer.FailedJobsError
			require.ErrorAs(t, err, &fe)
			require.Len(t, fe.Jobs, 1)
			require.Equal(t, "spawner", fe.Jobs[0].Name)
			require.Equal(t, 1, fe.Jobs[0].Tries, "a mistake in the graph is not retried")
			require.Contains(t, fe.Jobs[0].Err, "kid (new #")
			require.Contains(t, fe.Jobs[0].Err, badOptionText[which])
			require.Contains(t, fe.Jobs[0].Err, gaffer.ErrBadRequirement.Error())
			require.Equal(t, 1, l.Stats().Attempts, "the child never ran")
		})
	}
}

var regSeq int

// uniqueTypeName gives each registration in a test its own name, so that
// the test passes with -count=N in one process.
func uniqueTypeName(prefix string) string {
	regSeq++
	return fmt.Sprintf("%s.%d", prefix, regSeq)
}

// A bad option given to Register fails the registration.
func TestBadOptionAtRegister(t *testing.T) {
	fn := func(ctx context.Context, jc *gaffer.JobContext, in int) (int, error) { return in, nil }
	for which, opt := range badOptions {
		_, err := gaffer.Register(uniqueTypeName("reqtest.reg"), fn, opt)
		require.ErrorIs(t, err, gaffer.ErrBadRequirement, which)
		require.Contains(t, err.Error(), badOptionText[which], which)
	}

	name := uniqueTypeName("reqtest.must")
	func() {
		defer func() {
			r := recover()
			require.NotNil(t, r, "MustRegister panics on a bad option")
			err, ok := r.(error)
			require.True(t, ok, "it panics with the error: %v", r)
			require.ErrorIs(t, err, gaffer.ErrBadRequirement)
			require.True(t, strings.Contains(err.Error(), name))
		}()
		gaffer.MustRegister(name, fn, gaffer.Memory("a lot"))
	}()
	// A failed registration does not take the name.
	_, err := gaffer.Register(name, fn)
	require.NoError(t, err)
}

// Good options reach the batch system: a job asking for more than the
// machine has is refused naming what it asked for.
func TestOptionsReachTheBatchSystem(t *testing.T) {
	l, _ := newLeader(t, testOpts{})
	_, err := gaffer.Run(t.Context(), l, reqLeaf.New(reqIn{1}, gaffer.Name("greedy"), gaffer.Memory("9Gi")))
	var fe *gaffer.FailedJobsError
	require.ErrorAs(t, err, &fe)
	require.Len(t, fe.Jobs, 1)
	require.Contains(t, fe.Jobs[0].Err, "greedy")

	// And a job within the machine runs.
	l2, _ := newLeader(t, testOpts{})
	got, err := gaffer.Run(t.Context(), l2, reqLeaf.New(reqIn{4}, gaffer.Memory("2Gi"), gaffer.Cores(2)))
	require.NoError(t, err)
	require.Equal(t, 4, got)
	require.False(t, errors.Is(err, gaffer.ErrBadRequirement))
}
