package slurm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Fuzz targets: scheduler output is not ours, so no input may panic a
// parser, and what they return must be self-consistent.

func seedFiles(f *testing.F, names ...string) {
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
}

func FuzzParseSbatch(f *testing.F) {
	seedFiles(f, "sbatch-parsable.txt")
	f.Add("12;cl\n")
	f.Add("warning\n12\n")
	f.Fuzz(func(t *testing.T, in string) {
		id, err := parseSbatch(in)
		if err == nil && !validSlurmID(id) {
			t.Fatalf("accepted invalid ID %q", id)
		}
	})
}

func FuzzParseSqueue(f *testing.F) {
	seedFiles(f, "squeue.txt")
	f.Add("1\x1fRUNNING\x1f4294967295\x1f99-99:99:99\x1f\x1f\x1f\x1f")
	f.Fuzz(func(t *testing.T, in string) {
		st, _ := parseSqueue(in)
		for _, s := range st {
			if !validSlurmID(s.SlurmID) || s.State == "" || s.Elapsed < 0 {
				t.Fatalf("bad status %+v", s)
			}
			code, _ := exitFor(s)
			if code < 0 || code > 255+128 {
				t.Fatalf("exit code %d from %+v", code, s)
			}
		}
	})
}

func FuzzParseSacct(f *testing.F) {
	seedFiles(f, "sacct-allocations.txt", "sacct-steps.txt")
	f.Add("5\x1fCANCELLED by 12\x1f-1:-1\x1f1-\x1f")
	f.Fuzz(func(t *testing.T, in string) {
		st, _ := parseSacct(in)
		for _, s := range st {
			if !validSlurmID(s.SlurmID) || s.State == "" || s.Elapsed < 0 {
				t.Fatalf("bad status %+v", s)
			}
			if s.Exit < -1 || s.Exit > 255 || s.Signal < 0 || s.Signal > 255 {
				t.Fatalf("bad exit %+v", s)
			}
		}
	})
}

func FuzzParseScontrol(f *testing.F) {
	seedFiles(f, "scontrol-show-job.txt", "scontrol-show-job-o.txt", "scontrol-show-job-timeout.txt")
	f.Add("No jobs in the system\n")
	f.Add("= =x x= JobId=\n\n JobState=")
	f.Fuzz(func(t *testing.T, in string) {
		for _, rec := range parseScontrol(in) {
			if len(rec) == 0 {
				t.Fatal("empty record")
			}
			if st, err := scontrolStatus(rec); err == nil && !validSlurmID(st.SlurmID) {
				t.Fatalf("accepted invalid ID %q", st.SlurmID)
			}
		}
	})
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"5", "5:30", "1-02:30:45", "00:00:01.250", "UNLIMITED", "36500-999999:999999:999999.999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		d, ok := parseDuration(in)
		if !ok {
			return
		}
		if d < 0 {
			t.Fatalf("negative duration %v from %q", d, in)
		}
		// What we format, we parse back the same (to the second, rounded up).
		if d < 1000*24*time.Hour && !strings.Contains(in, ".") {
			back, ok := parseDuration(formatDuration(d))
			want := d
			if want < time.Second {
				want = time.Second
			}
			if !ok || back != want {
				t.Fatalf("round trip of %v (%q): %v %v", d, in, back, ok)
			}
		}
	})
}

func FuzzWrapScript(f *testing.F) {
	f.Add("/bin/sh", "-c", "exit 3", "K", "v'al")
	f.Fuzz(func(t *testing.T, a0, a1, a2, k, v string) {
		s := wrapScript([]string{a0, a1, a2}, nil, map[string]string{k: v})
		// Every argument appears quoted, so the script can only ever end in
		// a closing quote.
		if !strings.HasSuffix(s, "'") {
			t.Fatalf("script %q does not end quoted", s)
		}
		if shellUnquote(shellQuote(a0)) != a0 {
			t.Fatalf("quote round trip failed for %q", a0)
		}
	})
}

// shellUnquote undoes shellQuote the way sh reads it: outside quotes only
// the escaped single quote \' may appear.
func shellUnquote(s string) string {
	var sb strings.Builder
	in := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'':
			in = !in
		case !in && c == '\\' && i+1 < len(s):
			i++
			sb.WriteByte(s[i])
		default:
			sb.WriteByte(c)
		}
	}
	return sb.String()
}
