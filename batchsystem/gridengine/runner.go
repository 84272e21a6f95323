package gridengine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Runner runs one Grid Engine command (qsub, qstat, qacct, qdel, qconf)
// with stdin as its standard input, and returns its standard output. A
// command that exits non-zero must return an error; *CommandError carries
// its standard error, which the adapter reads to tell "no such job" from
// a real failure.
//
// It is an interface so that tests can run the adapter against a fake
// Grid Engine, and count or slow down the queries it makes.
type Runner interface {
	Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error)
}

// CommandError is a Grid Engine command that could not run or exited
// non-zero.
type CommandError struct {
	Name     string
	Args     []string
	ExitCode int    // -1 when the command did not run or was killed
	Stderr   string // trimmed standard error
	Stdout   string // trimmed standard output: qdel, for one, says "denied" there
	Err      error  // the underlying error from os/exec or the context
}

func (e *CommandError) Error() string {
	msg := e.Stderr
	if msg == "" {
		msg = e.Stdout
	}
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	if len(msg) > 500 {
		msg = msg[:500] + "..."
	}
	args := strings.Join(e.Args, " ")
	if len(args) > 200 {
		args = args[:200] + "..."
	}
	return fmt.Sprintf("gridengine: %s %s: exit %d: %s", e.Name, args, e.ExitCode, msg)
}

func (e *CommandError) Unwrap() error { return e.Err }

// ExecRunner runs the real commands.
//
// On Debian and Ubuntu, /usr/bin/qsub and the other commands are a shell
// wrapper that works out SGE_ROOT and the architecture on every call,
// which costs about 60 ms; the binaries themselves are in
// /usr/lib/gridengine and need SGE_ROOT (and SGE_CELL, unless it is
// "default") in their environment. ExecRunner{Dir: "/usr/lib/gridengine",
// Env: []string{"SGE_ROOT=/var/lib/gridengine"}} calls them directly.
type ExecRunner struct {
	Dir string   // directory holding the binaries; "" means PATH
	Env []string // added to the leader's environment, as "NAME=value"
}

// Run implements Runner.
func (r ExecRunner) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	path := name
	if r.Dir != "" {
		path = filepath.Join(r.Dir, name)
	}
	cmd := exec.CommandContext(ctx, path, args...)
	if len(r.Env) > 0 {
		cmd.Env = append(os.Environ(), r.Env...)
	}
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	ce := &CommandError{Name: name, Args: args, ExitCode: -1, Stderr: strings.TrimSpace(stderr.String()),
		Stdout: strings.TrimSpace(stdout.String()), Err: err}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Exited() {
		ce.ExitCode = ee.ExitCode()
	}
	if ctx.Err() != nil {
		ce.Err = fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	return stdout.Bytes(), ce
}

// stderrOf returns what a failed command printed, standard error first,
// or "". Grid Engine's commands are not consistent about which stream
// says what went wrong.
func stderrOf(err error) string {
	var ce *CommandError
	if !errors.As(err, &ce) {
		return ""
	}
	if ce.Stdout == "" {
		return ce.Stderr
	}
	return strings.TrimSpace(ce.Stderr + "\n" + ce.Stdout)
}
