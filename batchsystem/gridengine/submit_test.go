package gridengine

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/batchsystem"
)

// argAfter returns the argument after flag, or "".
func argAfter(args []string, flag string) string {
	if i := slices.Index(args, flag); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// resources lists the values of every -l in args.
func resources(args []string) []string {
	var res []string
	for i, a := range args {
		if a == "-l" && i+1 < len(args) {
			res = append(res, args[i+1])
		}
	}
	return res
}

func TestQsubArgs(t *testing.T) {
	b, f := newTestSystem(t, func(o *Options) { o.Queue = "fast.q"; o.ExtraArgs = []string{"-P", "lab"} })
	spec := shSpec("j7", "true")
	spec.Kind = "kind with spaces/and:colons"
	spec.Dir = "/shared/work dir/jobs/7"
	spec.LogPath = "/shared/work dir/jobs/7/log.1.1.txt"
	spec.Requirements = batchsystem.Requirements{Cores: 2.5, Memory: 100 << 20, Disk: 5 << 30, Walltime: 90*time.Minute + 500*time.Millisecond}
	_, err := b.Issue(t.Context(), spec)
	require.NoError(t, err)
	args := f.lastArgs("qsub")
	require.Equal(t, "gaffer_kind_with_spaces_and_colons_j7", argAfter(args, "-N"))
	require.Equal(t, []string{"-pe", "smp", "3"}, args[slices.Index(args, "-pe"):slices.Index(args, "-pe")+3], "cores rounded up")
	require.Equal(t, []string{"mem_free=34M", "h_rt=1:30:01"}, resources(args),
		"100 MiB over 3 slots of a per-slot consumable, rounded up; no disk without DiskResource")
	require.Equal(t, spec.Dir, argAfter(args, "-wd"))
	require.Equal(t, "/dev/null", argAfter(args, "-o"), "the script writes the log itself")
	require.Equal(t, "e", argAfter(args, "-w"))
	require.Equal(t, "fast.q", argAfter(args, "-q"))
	require.Equal(t, "/bin/sh", argAfter(args, "-S"))
	require.Contains(t, args, "-V")
	require.Contains(t, args, "-terse")
	require.Equal(t, []string{"-P", "lab"}, args[len(args)-2:])
	require.Equal(t, 1, f.count("qconf"), "qconf -sc told whether mem_free is per slot")

	// Once asked, qconf -sc is not asked again.
	_, err = b.Issue(t.Context(), spec)
	require.NoError(t, err)
	require.Equal(t, 1, f.count("qconf"))
}

func TestQsubArgsOptions(t *testing.T) {
	b, f := newTestSystem(t, func(o *Options) {
		o.NoInheritEnv, o.NoVerify = true, true
		o.WorkDir = "/shared/wd"
		o.GPUResource, o.DiskResource = "gpu", "scratch"
		o.MemoryResource = "h_vmem"
		o.ParallelEnv = "threads"
	})
	spec := shSpec("j8", "true")
	spec.Requirements = batchsystem.Requirements{Cores: 4, Memory: 4 << 30, Disk: 10 << 20,
		Accelerators: []batchsystem.Accelerator{{Kind: "gpu", Count: 2}}}
	_, err := b.Issue(t.Context(), spec)
	require.NoError(t, err)
	args := f.lastArgs("qsub")
	require.NotContains(t, args, "-V")
	require.NotContains(t, args, "-w")
	require.Equal(t, "/dev/null", argAfter(args, "-o"), "no LogPath: no output file anywhere")
	require.Equal(t, "/shared/wd", argAfter(args, "-wd"))
	require.Equal(t, "threads", argAfter(args, "-pe"))
	// The fake's qconf says h_vmem is not consumable and gpu is per slot
	// (2 GPUs over 4 slots: 1 each, rounded up); it does not know scratch,
	// which is then taken as per slot too (10 MiB over 4, rounded up).
	require.Equal(t, []string{"h_vmem=4096M", "gpu=1", "scratch=3M"}, resources(args))

	b2, f2 := newTestSystem(t, func(o *Options) { o.IgnoreMemory = true })
	spec.Requirements.Accelerators = nil
	_, err = b2.Issue(t.Context(), spec)
	require.NoError(t, err)
	require.Empty(t, resources(f2.lastArgs("qsub")))
	require.Contains(t, f2.lastArgs("qsub"), "-cwd", "no Dir nor WorkDir: the leader's directory")
}

// A qconf that fails makes the adapter take consumables as per slot, and
// ask again on the next submission.
func TestPerSlotWhenQconfFails(t *testing.T) {
	b, f := newTestSystem(t, nil)
	f.fail["qconf"] = &CommandError{Name: "qconf", ExitCode: 1, Stderr: "error: unable to contact qmaster"}
	spec := shSpec("j", "true")
	spec.Requirements = batchsystem.Requirements{Cores: 4, Memory: 400 << 20}
	_, err := b.Issue(t.Context(), spec)
	require.NoError(t, err)
	require.Equal(t, []string{"mem_free=100M"}, resources(f.lastArgs("qsub")))
	f.mu.Lock()
	delete(f.fail, "qconf")
	f.consumable = "JOB"
	f.mu.Unlock()
	_, err = b.Issue(t.Context(), spec)
	require.NoError(t, err)
	require.Equal(t, []string{"mem_free=400M"}, resources(f.lastArgs("qsub")), "a per-job consumable is asked for whole")
	require.Equal(t, 2, f.count("qconf"))
}

func TestBadSpecs(t *testing.T) {
	b, f := newTestSystem(t, nil)
	for name, mod := range map[string]func(*batchsystem.JobSpec){
		"no command":  func(s *batchsystem.JobSpec) { s.Command = nil },
		"NUL in argv": func(s *batchsystem.JobSpec) { s.Command = []string{"a\x00b"} },
		"bad env":     func(s *batchsystem.JobSpec) { s.Env = map[string]string{"A B": "x"} },
		"newline dir": func(s *batchsystem.JobSpec) { s.Dir = "/a\nb" },
	} {
		spec := shSpec("bad", "true")
		mod(&spec)
		_, err := b.Issue(t.Context(), spec)
		require.ErrorIs(t, err, ErrBadSpec, name)
		require.Contains(t, err.Error(), "job bad", name)
	}
	require.Zero(t, f.count("qsub"))
}

// TestJobScriptRunsInSh runs the script qsub would get, in /bin/sh, as
// Grid Engine's shepherd would: the arguments arrive intact, the
// environment is exported, the output goes to the log, and 99 and 100
// become 1.
func TestJobScriptRunsInSh(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "it's a log $HOME")
	spec := batchsystem.JobSpec{
		JobID: "j1\nsecond line", Attempt: 2, LogPath: log, Dir: dir,
		Command: []string{"/bin/sh", "-c", `printf '%s|' "$0" "$1" "$A" "$B"; echo; echo to-stderr >&2; exit "$EXIT"`, "it's", "$HOME `x` \\ \"q\""},
		Env:     map[string]string{"A": "from spec", "EXIT": "0"},
	}
	base := map[string]string{"A": "from options", "B": "multi\nline 'quoted'"}
	for _, c := range []struct {
		exit, want string
	}{{"0", "0"}, {"3", "3"}, {"99", "1"}, {"100", "1"}, {"101", "101"}} {
		spec.Env["EXIT"] = c.exit
		require.NoError(t, os.WriteFile(log, nil, 0o644))
		cmd := exec.Command("/bin/sh")
		cmd.Env = append(os.Environ(), "JOB_ID=42")
		cmd.Stdin = strings.NewReader(jobScript(spec, base))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else {
			require.NoError(t, err)
		}
		require.Equal(t, c.want, strconv.Itoa(code), "exit %s", c.exit)
		require.Empty(t, out.String(), "everything goes to the log")
		got, err := os.ReadFile(log)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(string(got), "it's|$HOME `x` \\ \"q\"|from spec|multi\nline 'quoted'|\nto-stderr\n"), "%q", got)
		if c.want != c.exit {
			require.Contains(t, string(got), "which Grid Engine reserves")
		}
		status, err := os.ReadFile(filepath.Join(dir, ".gridengine-exit.42"))
		require.NoError(t, err)
		exit, wall, ok := parseStatus(status)
		require.True(t, ok, "%q", status)
		require.Equal(t, c.exit, strconv.Itoa(exit), "the status file has the command's own status")
		require.Less(t, wall, time.Minute)
	}
}

func TestJobName(t *testing.T) {
	require.Equal(t, "gaffer_k_12", jobName("gaffer", batchsystem.JobSpec{Kind: "k", JobID: "12"}))
	require.Equal(t, "p_a_b_c_d_e_f_g_h", jobName("p", batchsystem.JobSpec{Kind: "a b/c:d@e\\f*g?h"}))
	long := jobName("prefix", batchsystem.JobSpec{Kind: strings.Repeat("k", 300), JobID: "j42"})
	require.Len(t, long, maxNameLen)
	require.True(t, strings.HasPrefix(long, "prefix_"), "the prefix is kept, for qacct's pattern")
	require.True(t, strings.HasSuffix(long, "_j42"), "the job ID is kept")
}

// The refusals qsub printed on the test cell, each mapped to the resource
// it is about.
func TestRefusalsRecorded(t *testing.T) {
	verify := readTestdata(t, "qsub-verify-pe.stderr")
	r := runnerFunc(func(stdin []byte, name string, args ...string) ([]byte, error) {
		if slices.Contains(args, "-pe") {
			return nil, &CommandError{Name: name, Args: args, ExitCode: 1, Stderr: verify}
		}
		return []byte("verification: found suitable queue(s)\n"), nil
	})
	b, err := New(Options{Runner: r, MemoryResource: "mem_free", GPUResource: "gpu"})
	require.NoError(t, err)
	defer b.Shutdown(t.Context())
	spec := shSpec("j", "true")
	q := request{slots: 100000, memory: "mem_free=1M", gpus: "gpu=1"}
	for file, want := range map[string]string{
		"qsub-no-suitable-queues.stderr": "cores",
		"qsub-unknown-resource.stderr":   "accelerators",
		"qsub-unknown-pe.stderr":         "cores",
	} {
		err := b.refusal(t.Context(), spec, q, &CommandError{Name: "qsub", ExitCode: 1, Stderr: readTestdata(t, file)})
		require.ErrorIs(t, err, batchsystem.ErrInsufficientResources, file)
		var ire *batchsystem.InsufficientResourcesError
		require.ErrorAs(t, err, &ire)
		require.Equal(t, want, ire.Resource, file)
	}
	require.NoError(t, b.refusal(t.Context(), spec, q, &CommandError{Name: "qsub", ExitCode: 1, Stderr: "error: unable to contact qmaster"}),
		"an unreachable qmaster is not a refusal")
}

type runnerFunc func(stdin []byte, name string, args ...string) ([]byte, error)

func (f runnerFunc) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	return f(stdin, name, args...)
}
