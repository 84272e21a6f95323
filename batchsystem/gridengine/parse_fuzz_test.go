package gridengine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
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

func FuzzParseQsub(f *testing.F) {
	seedFiles(f, "qsub-terse.txt", "qsub-terse-array.txt")
	f.Add("warning: something\n12\n")
	f.Fuzz(func(t *testing.T, in string) {
		id, err := parseQsub(in)
		if err == nil && !validJobNumber(id) {
			t.Fatalf("accepted invalid job number %q", id)
		}
	})
}

func FuzzParseQstatXML(f *testing.F) {
	seedFiles(f, "qstat-xml.txt", "qstat-xml-empty.txt")
	f.Add("<job_info><job_list><JB_job_number>1</JB_job_number><state>\u00e9</state><JAT_start_time>9999-99-99T99:99:99</JAT_start_time></job_list></job_info>")
	f.Fuzz(func(t *testing.T, in string) {
		jobs, err := parseQstatXML([]byte(in), time.UTC)
		if err != nil && len(jobs) > 0 {
			t.Fatalf("a refused listing returned %d jobs", len(jobs))
		}
		for _, j := range jobs {
			if !validJobNumber(j.Number) {
				t.Fatalf("accepted invalid job number %q", j.Number)
			}
			classify(j.State) // must not panic, whatever the letters
			describeState(j.State)
		}
	})
}

func FuzzParseQacct(f *testing.F) {
	seedFiles(f, "qacct.txt", "qacct-none.stderr")
	f.Add("=====\njobnumber 5\nfailed 37 : x\nexit_status 999999999\nru_wallclock 1e308s\n")
	f.Fuzz(func(t *testing.T, in string) {
		recs, _ := parseQacct(in)
		for _, r := range recs {
			if !validJobNumber(r.Number) || r.Failed < 0 || r.Wall < 0 {
				t.Fatalf("bad record %+v", r)
			}
			code, reason, msg := exitFor(r, time.Second)
			if code < 0 || code > 255 {
				t.Fatalf("exit code %d from %+v", code, r)
			}
			if r.Failed != 0 && (code == 0 || reason == batchsystem.Finished) {
				t.Fatalf("failed %d reported as success: %d %v", r.Failed, code, reason)
			}
			if !strings.Contains(msg, r.Number) {
				t.Fatalf("message %q does not name job %s", msg, r.Number)
			}
		}
	})
}

func FuzzParseQstatJ(f *testing.F) {
	seedFiles(f, "qstat-j.txt", "qstat-j-unknown.stderr")
	f.Add("===\njob_number: 1\nerror reason 1:\n\tcontinued\n")
	f.Fuzz(func(t *testing.T, in string) {
		for n, d := range parseQstatJ(in) {
			if n != d.Number || !validJobNumber(n) {
				t.Fatalf("detail %+v under %q", d, n)
			}
		}
	})
}

func FuzzQdelDone(f *testing.F) {
	seedFiles(f, "qdel.stdout", "qdel-mixed.stdout")
	f.Fuzz(func(t *testing.T, in string) {
		if qdelDone(in) && strings.TrimSpace(in) == "" {
			t.Fatal("an empty answer counted as done")
		}
	})
}

func FuzzParseComplexes(f *testing.F) {
	seedFiles(f, "qconf-sc.txt")
	f.Fuzz(func(t *testing.T, in string) {
		for name := range parseComplexes(in) {
			if strings.HasPrefix(name, "#") || name == "" {
				t.Fatalf("comment or empty name %q", name)
			}
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	f.Add("exit 3 start 1796032711 end 1796032713\n")
	f.Fuzz(func(t *testing.T, in string) {
		exit, wall, ok := parseStatus([]byte(in))
		if ok && (exit < 0 || exit > 255 || wall < 0) {
			t.Fatalf("status %d, %v from %q", exit, wall, in)
		}
	})
}

func FuzzFormatHRT(f *testing.F) {
	for _, d := range []int64{0, 1, int64(time.Second), int64(90 * time.Minute), 1 << 62, -5} {
		f.Add(d)
	}
	f.Fuzz(func(t *testing.T, n int64) {
		s := formatHRT(time.Duration(n))
		parts := strings.Split(s, ":")
		if len(parts) != 3 || s == "0:00:00" {
			t.Fatalf("h_rt %q from %d", s, n)
		}
	})
}

func FuzzJobScript(f *testing.F) {
	f.Add("/bin/sh", "-c", "exit 3", "K", "v'al")
	f.Fuzz(func(t *testing.T, a0, a1, a2, k, v string) {
		if !shellName.MatchString(k) {
			return // refused before a script is built
		}
		s := jobScript(batchsystem.JobSpec{Command: []string{a0, a1, a2}, Env: map[string]string{k: v}}, nil)
		if !strings.HasSuffix(s, "exit $rc\n") {
			t.Fatalf("script %q does not end with its exit", s)
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
