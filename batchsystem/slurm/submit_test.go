package slurm

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/batchsystem"
)

func argValue(args []string, prefix string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, prefix); ok {
			return v, true
		}
	}
	return "", false
}

func TestSbatchArgsMapRequirements(t *testing.T) {
	b, _ := newTestSystem(t, func(o *Options) {
		o.Partition, o.GPUPartition, o.WorkDir = "batch", "gpu", "/shared/work"
		o.ExtraArgs = []string{"--qos=high", "--mem-bind=local", "-A", "lab"}
	})
	spec := batchsystem.JobSpec{
		JobID: "j/42", Kind: "align reads", Command: []string{"/usr/bin/worker", "--job", "j/42"},
		LogPath: "/shared/logs/100%.log",
		Requirements: batchsystem.Requirements{
			Cores: 1.5, Memory: 1<<30 + 1, Disk: 2 << 30, Walltime: 90 * time.Minute,
			Accelerators: []batchsystem.Accelerator{{Kind: "gpu", Count: 2}, {Kind: "gpu"}},
		},
	}
	args, err := b.sbatchArgs(spec)
	require.NoError(t, err)
	want := map[string]string{
		"--cpus-per-task=": "2",
		"--mem=":           "1025M", // rounded up to the next MiB
		"--tmp=":           "2048M",
		"--time=":          "0-01:30:00",
		"--gres=":          "gpu:3",
		"--partition=":     "gpu", // GPU jobs go to the GPU partition
		"--chdir=":         "/shared/work",
		"--output=":        "/shared/logs/100%%.log",
		"--job-name=":      "gaffer_align_reads_j_42",
	}
	for k, v := range want {
		got, ok := argValue(args, k)
		require.True(t, ok, "missing %s in %q", k, args)
		require.Equal(t, v, got, k)
	}
	require.Equal(t, "--parsable", args[0])
	require.Contains(t, args, "--qos=high")
	require.Contains(t, args, "lab")
	require.True(t, strings.HasPrefix(args[len(args)-1], "--wrap="), "--wrap comes last")

	spec.Requirements.Accelerators = nil
	spec.Requirements.Disk = 0
	spec.Requirements.Walltime = 0
	spec.Dir = "/job/dir"
	args, err = b.sbatchArgs(spec)
	require.NoError(t, err)
	part, _ := argValue(args, "--partition=")
	require.Equal(t, "batch", part)
	dir, _ := argValue(args, "--chdir=")
	require.Equal(t, "/job/dir", dir, "JobSpec.Dir wins over WorkDir")
	for _, absent := range []string{"--gres=", "--tmp=", "--time="} {
		_, ok := argValue(args, absent)
		require.False(t, ok, absent)
	}
}

func TestSbatchArgsRefusals(t *testing.T) {
	b, _ := newTestSystem(t, nil)
	_, err := b.sbatchArgs(batchsystem.JobSpec{JobID: "x"})
	require.ErrorIs(t, err, ErrBadSpec, "no command")

	_, err = b.sbatchArgs(batchsystem.JobSpec{JobID: "x", Command: []string{"a\x00b"}})
	require.ErrorIs(t, err, ErrBadSpec)

	_, err = b.sbatchArgs(batchsystem.JobSpec{JobID: "x", Command: []string{"true"}, Env: map[string]string{"A-B": "1"}})
	require.ErrorIs(t, err, ErrBadSpec)

	_, err = b.sbatchArgs(batchsystem.JobSpec{JobID: "x", Command: []string{"true"},
		Requirements: batchsystem.Requirements{Accelerators: []batchsystem.Accelerator{{Kind: "tpu"}}}})
	require.ErrorIs(t, err, batchsystem.ErrInsufficientResources)
}

func TestIgnoreDisk(t *testing.T) {
	b, _ := newTestSystem(t, func(o *Options) { o.IgnoreDisk = true })
	args, err := b.sbatchArgs(batchsystem.JobSpec{Command: []string{"true"}, Requirements: batchsystem.Requirements{Disk: 1 << 30}})
	require.NoError(t, err)
	_, ok := argValue(args, "--tmp=")
	require.False(t, ok)
}

// TestWrapScriptRunsInShell runs the generated script in a real sh, with
// arguments and values a careless quoting would expand or split.
func TestWrapScriptRunsInShell(t *testing.T) {
	nasty := []string{`it's`, `$HOME`, "`id`", `a b`, `"q"`, `\n`, `*`, ``, "line\nbreak", `;exit 9`}
	argv := append([]string{"/usr/bin/printf", `%s|`}, nasty...)
	script := wrapScript(argv, map[string]string{"BASE": "base", "OVER": "base"},
		map[string]string{"OVER": "job's $x", "EMPTY": ""})
	out, err := exec.Command("/bin/sh", "-c", script).Output()
	require.NoError(t, err)
	require.Equal(t, strings.Join(nasty, "|")+"|", string(out))

	script = wrapScript([]string{"/bin/sh", "-c", `printf '%s/%s/%s' "$BASE" "$OVER" "${EMPTY-unset}"`},
		map[string]string{"BASE": "base", "OVER": "base"}, map[string]string{"OVER": "job's $x", "EMPTY": ""})
	out, err = exec.Command("/bin/sh", "-c", script).Output()
	require.NoError(t, err)
	require.Equal(t, "base/job's $x/", string(out), "job env wins over Options.Env; empty values are exported")
}

func TestJobName(t *testing.T) {
	require.Equal(t, "gaffer_k_1", jobName("gaffer", batchsystem.JobSpec{Kind: "k", JobID: "1"}))
	require.Equal(t, "p_a_b_c", jobName("p", batchsystem.JobSpec{Kind: "a|b", JobID: "c"}))
	long := jobName("gaffer", batchsystem.JobSpec{Kind: strings.Repeat("k", 300), JobID: "the-id"})
	require.Len(t, long, 120)
	require.True(t, strings.HasSuffix(long, "_the-id"), "the job ID survives truncation")
}

func TestEscapePattern(t *testing.T) {
	require.Equal(t, "/a/%%j.log", escapePattern("/a/%j.log"))
	require.Equal(t, `/a\b/%j`, escapePattern(`/a\b/%j`), "a backslash turns patterns off in sbatch")
}

func TestExtraArgsConflicts(t *testing.T) {
	for _, a := range []string{"--mem=4G", "--mem-per-cpu=1G", "--cpus-per-task=4", "-c", "-c4", "--time=1:00",
		"-t", "--partition=x", "--part=x", "-p", "--output=/x", "--wrap=true", "--export=NONE", "--gres=gpu:1",
		"--job-name=x", "-J", "--array=1-3", "--ntasks=2", "-n2", "--tmp=1G", "--chdir=/x"} {
		_, err := New(Options{Runner: newFake(), ExtraArgs: []string{a}})
		require.ErrorIs(t, err, ErrBadOption, a)
		var ce *ConflictingArgError
		require.True(t, errors.As(err, &ce), a)
		require.Equal(t, a, ce.Arg)
	}
	for _, a := range []string{"--qos=high", "--account=lab", "-A", "--mem-bind=local", "--exclusive", "--constraint=avx2", "--requeue", "-q"} {
		b, err := New(Options{Runner: newFake(), ExtraArgs: []string{a}})
		require.NoError(t, err, a)
		require.NoError(t, b.Shutdown(t.Context()))
	}
	_, err := New(Options{Runner: newFake(), Env: map[string]string{"1BAD": "x"}})
	require.ErrorIs(t, err, ErrBadOption)
	_, err = New(Options{Runner: newFake(), Accounting: "slurmdbd"})
	require.ErrorIs(t, err, ErrBadOption)
}

func TestHugeRequestsDoNotOverflow(t *testing.T) {
	b, _ := newTestSystem(t, nil)
	args, err := b.sbatchArgs(batchsystem.JobSpec{Command: []string{"true"}, Requirements: batchsystem.Requirements{
		Cores: 1e300, Memory: 1<<63 - 1, Disk: 1<<63 - 1, Walltime: 1<<63 - 1}})
	require.NoError(t, err)
	mem, _ := argValue(args, "--mem=")
	require.Equal(t, "8796093022208M", mem)
	c, _ := argValue(args, "--cpus-per-task=")
	require.Equal(t, "1048576", c)
}
