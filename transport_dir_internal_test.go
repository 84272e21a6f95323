package gaffer

import (
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/batchsystem"
)

func sampleOutcome() *outcome {
	return &outcome{Job: 12, Attempt: 1, Epoch: 3, Seq: 40, OK: true, Result: json.RawMessage(`{"sum":499500}`),
		Started: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), Ended: time.Date(2030, 1, 2, 3, 4, 6, 0, time.UTC)}
}

// A result file damaged anywhere, by a cut or a changed byte, reads as an
// error naming the file, or as the very outcome written: never another
// value.
func TestDamagedResultFileIsAnErrorNeverAnotherValue(t *testing.T) {
	dir := t.TempDir()
	want := sampleOutcome()
	require.NoError(t, writeResult(dir, want))
	path := filepath.Join(dir, resultFile(3, 40))
	good, err := os.ReadFile(path)
	require.NoError(t, err)
	got, err := readOutcome(path, 12, 3, 40)
	require.NoError(t, err)
	require.Equal(t, want, got)

	rng := rand.New(rand.NewPCG(1, 2))
	errs := 0
	for i := range 300 {
		b := append([]byte(nil), good...)
		if i%3 == 0 {
			b = b[:rng.IntN(len(b))]
		} else {
			b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
		}
		require.NoError(t, os.WriteFile(path, b, 0o644))
		got, err := readOutcome(path, 12, 3, 40)
		if err != nil {
			require.Contains(t, err.Error(), path)
			errs++
			continue
		}
		require.Equal(t, want, got, "case %d: a damaged file read as another outcome", i)
	}
	require.Equal(t, 300, errs, "every damage is seen")

	// Another attempt's file is not this one's.
	require.NoError(t, os.WriteFile(path, good, 0o644))
	_, err = readOutcome(path, 12, 3, 41)
	require.ErrorContains(t, err, "checksum mismatch")
}

// The transport hands the leader a damaged result file's error, and the
// tail of the worker's log: the attempt fails with the reason, and is
// retried, rather than "its result never reached the leader".
func TestTransportReportsAnUnreadableResult(t *testing.T) {
	work := t.TempDir()
	tr := &dirTransport{log: slog.New(slog.DiscardHandler), workDir: work, keep: keepLogs{workDir: work, limit: 1 << 20}}
	a := attempt{job: 12, epoch: 3, seq: 40}
	dir := jobDir(work, a.job)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, writeResult(dir, sampleOutcome()))
	require.NoError(t, os.WriteFile(filepath.Join(dir, logFile(3, 40)), []byte("worker said goodbye\n"), 0o644))
	path := filepath.Join(dir, resultFile(3, 40))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	b[len(b)-3] ^= 0x20
	require.NoError(t, os.WriteFile(path, b, 0o644))

	tk := tr.take(a, &batchsystem.FinishedJob{ID: 1, ExitCode: 0, Reason: batchsystem.Finished})
	require.Nil(t, tk.out)
	require.ErrorContains(t, tk.err, "checksum mismatch")
	require.Equal(t, "worker said goodbye\n", tk.tail)
	require.NotEmpty(t, tk.log, "a failed attempt's log is kept")
}

func FuzzReadOutcome(f *testing.F) {
	dir := f.TempDir()
	if err := writeResult(dir, sampleOutcome()); err != nil {
		f.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(dir, resultFile(3, 40)))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte(`{"job":12,"epoch":3,"seq":40,"ok":true,"result":1}`))
	f.Add([]byte("gaffer-result crc32c=zz\n{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "r.json")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := readOutcome(path, 12, 3, 40)
		if err == nil && (out == nil || out.Job != 12 || out.Epoch != 3 || out.Seq != 40) {
			t.Fatalf("accepted %q as %+v", b, out)
		}
	})
}
