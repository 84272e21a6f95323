package metrics_test

import (
	"encoding/json"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/metrics"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func at(hhmm string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05", "2026-12-04 "+hhmm)
	if err != nil {
		panic(err)
	}
	return t
}

func ended(kind, node string, end time.Time, ok bool) gaffer.AttemptEnded {
	e := gaffer.AttemptEnded{Kind: kind, Node: node, Attempt: 1, Start: end.Add(-time.Second), End: end,
		Wall: time.Second, OK: ok, Reason: "finished"}
	if !ok {
		e.Error = "it failed"
	}
	return e
}

func blockStarts(s metrics.Snapshot) []string {
	var out []string
	for _, b := range s.Blocks {
		out = append(out, b.Start.Format("15:04"))
	}
	return out
}

// Five-minute blocks over three hours: an attempt counts in the block of
// its end; blocks roll over as the clock moves, empty ones included;
// blocks older than three hours drop (the totals keep them); a clock that
// jumps further than the period starts afresh.
func TestBlocksRollOverAndOldOnesDrop(t *testing.T) {
	clock := &fakeClock{t: at("10:02:00")}
	v := metrics.New(metrics.Options{Now: clock.Now})

	v.AttemptEnded(ended("a", "n1", at("10:01:30"), true))
	v.AttemptIssued(gaffer.AttemptIssued{Kind: "a", Attempt: 2, Time: at("10:02:00")})
	s := v.Snapshot()
	require.Equal(t, []string{"10:00"}, blockStarts(s))
	require.Equal(t, at("10:05:00"), s.Blocks[0].End)
	require.Equal(t, 1, s.Blocks[0].Total.OK)
	require.Equal(t, 1, s.Blocks[0].Total.Retries)
	require.Equal(t, 1, s.Blocks[0].ByNode["n1"].Ended)

	// Twelve minutes on: two new blocks, the one between them empty.
	clock.Set(at("10:14:59"))
	v.AttemptEnded(ended("a", "n1", at("10:14:00"), false))
	v.AttemptEnded(ended("b", "n2", at("10:03:00"), true)) // reported late: counts where it ended
	s = v.Snapshot()
	require.Equal(t, []string{"10:00", "10:05", "10:10"}, blockStarts(s))
	require.Equal(t, 2, s.Blocks[0].Total.Ended)
	require.Equal(t, 1, s.Blocks[0].ByKind["b"].OK)
	require.Zero(t, s.Blocks[1].Total.Ended)
	require.Equal(t, 1, s.Blocks[2].Total.Failed)
	require.Equal(t, map[string]int{"finished": 1}, s.Blocks[2].Total.Reasons)

	// An end stamped in the future (another machine's clock) counts now.
	v.AttemptEnded(ended("a", "n1", at("10:30:00"), true))
	require.Equal(t, 1, v.Snapshot().Blocks[2].Total.OK)

	// Three hours after the first block, it drops: 36 blocks are kept,
	// from 10:05 to 13:00.
	clock.Set(at("13:00:00"))
	s = v.Snapshot()
	require.Len(t, s.Blocks, 36)
	require.Equal(t, "10:05", blockStarts(s)[0])
	require.Equal(t, "13:00", blockStarts(s)[35])
	require.Equal(t, 0, s.Blocks[0].Total.Ended, "10:05 was empty")
	require.Equal(t, 2, s.Blocks[1].Total.Ended, "10:10 keeps its two")
	for _, b := range s.Blocks[2:] {
		require.Zero(t, b.Total.Ended)
	}
	// An attempt that ended before the oldest block counts in the
	// totals only.
	v.AttemptEnded(ended("c", "n3", at("10:04:59"), true))
	s = v.Snapshot()
	for _, b := range s.Blocks {
		require.Zero(t, b.ByKind["c"].Ended)
	}
	require.Equal(t, 1, s.ByKind["c"].Ended)
	require.Equal(t, 5, s.Total.Ended, "the totals keep what the blocks dropped")

	// One more block: 10:05 drops.
	clock.Set(at("13:05:00"))
	require.Equal(t, "10:10", blockStarts(v.Snapshot())[0])

	// A jump past the whole period leaves only the current block.
	clock.Set(at("17:42:10"))
	v.AttemptEnded(ended("a", "n1", at("17:41:00"), true))
	s = v.Snapshot()
	require.Equal(t, []string{"17:40"}, blockStarts(s))
	require.Equal(t, 1, s.Blocks[0].Total.OK)
	require.Equal(t, 6, s.Total.Ended)
}

// Other block lengths and periods: 1-minute blocks over 10 minutes.
func TestBlocksOfOtherLengths(t *testing.T) {
	clock := &fakeClock{t: at("10:00:30")}
	v := metrics.New(metrics.Options{Now: clock.Now, Block: time.Minute, Period: 10 * time.Minute})
	for i := range 15 {
		clock.Set(at("10:00:30").Add(time.Duration(i) * time.Minute))
		v.AttemptEnded(ended("a", "", clock.Now(), true))
	}
	s := v.Snapshot()
	require.Len(t, s.Blocks, 10)
	require.Equal(t, "10:05", blockStarts(s)[0])
	require.Equal(t, "10:14", blockStarts(s)[9])
	for _, b := range s.Blocks {
		require.Equal(t, 1, b.Total.OK)
	}
	require.Equal(t, 15, s.Total.OK)
	require.Equal(t, 15, s.ByNode[""].OK, "an unknown node is \"\"")
}

// Totals, by job type and by node: counts, reasons, rescues, retries,
// means and peaks.
func TestViews(t *testing.T) {
	clock := &fakeClock{t: at("10:00:00")}
	v := metrics.New(metrics.Options{Now: clock.Now})
	v.AttemptIssued(gaffer.AttemptIssued{Kind: "a", Attempt: 1})
	v.AttemptIssued(gaffer.AttemptIssued{Kind: "a", Attempt: 2})
	v.AttemptIssued(gaffer.AttemptIssued{Kind: "b", Attempt: 1})
	v.AttemptEnded(gaffer.AttemptEnded{Kind: "a", Node: "n1", OK: false, Reason: "missing", Rescued: true})
	v.AttemptEnded(gaffer.AttemptEnded{Kind: "a", Node: "n1", OK: true, Wall: 3 * time.Second, CPU: 2 * time.Second, MaxRSS: 100})
	v.AttemptEnded(gaffer.AttemptEnded{Kind: "b", Node: "n2", OK: true, Wall: 1 * time.Second, CPU: 0, MaxRSS: 300})
	v.Committed(gaffer.Commit{Commits: 7, Status: gaffer.Status{Live: 3, Ready: 1}})

	s := v.Snapshot()
	require.Equal(t, metrics.Counts{Issued: 3, Retries: 1, Ended: 3, OK: 2, Failed: 1, Rescued: 1,
		Reasons: map[string]int{"missing": 1}, Wall: 4 * time.Second, WallN: 2, CPU: 2 * time.Second, CPUN: 1, MaxRSS: 300}, s.Total)
	require.Equal(t, 2*time.Second, s.Total.MeanWall())
	require.Equal(t, 2*time.Second, s.Total.MeanCPU())
	require.Equal(t, 2, s.ByKind["a"].Issued)
	require.Equal(t, 1, s.ByKind["a"].Rescued)
	require.Equal(t, int64(100), s.ByKind["a"].MaxRSS)
	require.Equal(t, 2, s.ByNode["n1"].Ended)
	require.Zero(t, s.ByNode["n1"].Issued, "issued attempts have no node yet")
	require.Equal(t, 1, s.ByNode["n2"].OK)
	require.Equal(t, 7, s.Commits)
	require.Equal(t, 3, s.Status.Live)
	require.Equal(t, time.Duration(0), metrics.Counts{}.MeanWall())

	// A snapshot is a copy.
	s.Total.Reasons["missing"] = 99
	s.ByKind["a"] = metrics.Counts{}
	require.Equal(t, 1, v.Snapshot().Total.Reasons["missing"])
	require.Equal(t, 2, v.Snapshot().ByKind["a"].Issued)

	// Served as JSON.
	rr := httptest.NewRecorder()
	v.ServeHTTP(rr, httptest.NewRequest("GET", "/", nil))
	var got metrics.Snapshot
	require.NoError(t, json.Unmarshal(rr.Body.Bytes(), &got))
	require.Equal(t, v.Snapshot().Total, got.Total)
}

// Tee passes every event to each receiver; Discard takes them all.
func TestTee(t *testing.T) {
	a, b := metrics.New(metrics.Options{}), metrics.New(metrics.Options{})
	m := metrics.Tee(a, nil, b, metrics.Discard)
	m.AttemptIssued(gaffer.AttemptIssued{Kind: "k"})
	m.AttemptEnded(gaffer.AttemptEnded{Kind: "k", OK: true})
	m.Committed(gaffer.Commit{Commits: 1})
	for _, v := range []*metrics.Views{a, b} {
		s := v.Snapshot()
		require.Equal(t, 1, s.Total.Issued)
		require.Equal(t, 1, s.Total.OK)
		require.Equal(t, 1, s.Commits)
	}
}

// Views are read while a leader feeds them (run with -race).
func TestConcurrentReads(t *testing.T) {
	v := metrics.New(metrics.Options{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 2000 {
			v.AttemptEnded(gaffer.AttemptEnded{Kind: "k", Node: "n", OK: false, Reason: "failed", End: time.Now()})
		}
	})
	for range 200 {
		s := v.Snapshot()
		require.LessOrEqual(t, s.Total.Ended, 2000)
	}
	wg.Wait()
	require.Equal(t, 2000, v.Snapshot().Total.Reasons["failed"])
}
