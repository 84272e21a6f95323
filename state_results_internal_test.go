package gaffer

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/jobstore"
)

// promiseOf is a placeholder for job id's result, as stored.
func promiseOf(id int64) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{%q:{"job":%d}}`, placeholderKey, id))
}

// schedFrom starts a workflow from fragment f, as newSched does.
func schedFrom(t *testing.T, f *fragment) *sched {
	s := &sched{t: t, g: defaultGraph(t), clock: testEpoch, strict: true, st: newMemStore(), adds: map[JobID]*added{}}
	s.g.now = func() time.Time { return s.clock }
	s.g.epoch = 1
	require.NoError(t, f.validate(""))
	ids, _, err := s.g.ingest(f, nil, nil)
	require.NoError(t, err)
	s.g.root = ids.get(-1)
	require.Empty(t, s.g.derive())
	s.apply()
	return s
}

// requireReadable checks that every issued job finds the results its
// input promises in the store.
func requireReadable(t *testing.T, s *sched) {
	t.Helper()
	for _, ia := range s.g.issued {
		j := ia.j
		if !j.inputPromises {
			continue
		}
		_, err := mapPlaceholders(s.st.inputs[j.id], func(ph placeholder) ([]byte, error) {
			require.Contains(t, s.st.results, JobID(ph.Job), "job %d reads the result of %d", j.id, ph.Job)
			return nil, nil
		})
		require.NoError(t, err)
	}
}

// chainFrag is a root (1) whose child 2 starts a chain of n steps, each
// the child of the one before and reading its result; with checkpoint,
// the last step is a checkpoint.
func chainFrag(n int, checkpoint bool) *fragment {
	f := &fragment{Jobs: make([]fragJob, n+1)}
	for i := range f.Jobs {
		f.Jobs[i] = testJob("test.kind")
		f.Jobs[i].Tmp = -int64(i + 1)
		if i >= 2 {
			f.Jobs[i].Input = promiseOf(-int64(i)) // the step before
		}
		if i+1 < len(f.Jobs) {
			f.Jobs[i].Links = &fragLinks{Children: []int64{-int64(i + 2)}}
		}
	}
	f.Jobs[n].Checkpoint = checkpoint // a leaf, as a new checkpoint must be
	return f
}

func TestResultsGoOnceRead(t *testing.T) {
	const n = 6 // jobs 2..7
	s := schedFrom(t, chainFrag(n, false))
	require.Equal(t, []JobID{1}, s.drain())
	// The root forwards the last step's value: that result stays.
	s.end(1, event{out: &outcome{OK: true, Result: promiseOf(n + 1)}})
	for id := JobID(2); id <= n+1; id++ {
		require.Equal(t, []JobID{id}, s.drain())
		requireReadable(t, s)
		s.succeed(id)
		if id > 2 {
			require.NotContains(t, s.st.results, id-1, "step %d's result went once step %d, its only reader, succeeded", id-1, id)
		}
		require.Contains(t, s.st.results, id)
	}
	require.Equal(t, jobstore.StatusSucceeded, s.outcome())
	require.Equal(t, []JobID{1, n + 1}, slices.Sorted(maps.Keys(s.st.results)), "the root's and the one it forwards to")
}

// A failed step reads its result again when it is retried; a checkpoint
// reads its input again when its subtree fails, also after a restart.
func TestResultsKeptForRetriesAndCheckpoints(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprint("restart=", restart), func(t *testing.T) {
			s := schedFrom(t, chainFrag(2, true)) // 3 is a checkpoint reading 2
			s.setRetries(3, 5)
			s.drain()
			s.succeed(1)
			s.drain()
			s.succeed(2)
			require.Equal(t, []JobID{3}, s.drain())
			s.fail(3, "flaky", false)
			require.Contains(t, s.st.results, JobID(2), "a failed reader keeps what it reads")
			s.advance(time.Hour)
			require.Equal(t, []JobID{3}, s.drain())
			requireReadable(t, s)
			s.addChildJob(3, 4)
			s.succeed(3)
			require.Contains(t, s.st.results, JobID(2), "a checkpoint keeps what it reads while it may run again")
			if restart {
				s = reload(t, s)
				s.strict = false
			}
			require.Equal(t, []JobID{4}, s.drain())
			s.fail(4, "broken", true) // the checkpoint's subtree fails: it runs again
			s.advance(time.Hour)
			require.Equal(t, []JobID{3}, s.drain())
			requireReadable(t, s)
			s.succeed(3)
			require.Equal(t, jobstore.StatusSucceeded, s.outcome())
			require.NotContains(t, s.st.results, JobID(2), "once the checkpoint is done for good, 2's result goes")
		})
	}
}

// A leader that restarts at any step counts the holds again from the
// records and inputs, and drops nothing a job still reads.
func TestResultsReadAfterReload(t *testing.T) {
	const n = 5
	for k := 2; k <= n+1; k++ {
		t.Run(fmt.Sprint(k), func(t *testing.T) {
			s := schedFrom(t, chainFrag(n, false))
			s.drain()
			s.end(1, event{out: &outcome{OK: true, Result: promiseOf(n + 1)}})
			for id := JobID(2); id < JobID(k); id++ {
				s.drain()
				s.succeed(id)
			}
			r := reload(t, s)
			r.strict = false
			for !r.g.finished() {
				ids := r.drain()
				require.NotEmpty(t, ids)
				requireReadable(t, r)
				for _, id := range ids {
					r.succeed(id)
				}
			}
			require.Equal(t, jobstore.StatusSucceeded, r.outcome())
			require.Contains(t, r.st.results, JobID(n+1), "the forwarded result stays")
			require.Contains(t, r.st.results, JobID(1))
		})
	}
}
