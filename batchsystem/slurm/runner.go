package slurm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// Runner runs one Slurm command (sbatch, squeue, sacct, scontrol, scancel)
// and returns its standard output. A command that exits non-zero must
// return an error; *CommandError carries its standard error, which the
// adapter reads to tell "no such job" from a real failure.
//
// It is an interface so that tests can run the adapter against a fake
// Slurm, and count or slow down the queries it makes.
type Runner interface {
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
}

// CommandError is a Slurm command that could not run or exited non-zero.
type CommandError struct {
	Name     string
	Args     []string
	ExitCode int    // -1 when the command did not run or was killed
	Stderr   string // trimmed standard error
	Err      error  // the underlying error from os/exec or the context
}

func (e *CommandError) Error() string {
	msg := e.Stderr
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
	return fmt.Sprintf("slurm: %s %s: exit %d: %s", e.Name, args, e.ExitCode, msg)
}

func (e *CommandError) Unwrap() error { return e.Err }

// ExecRunner runs the real commands, found on PATH unless Dir is set.
type ExecRunner struct {
	Dir string // directory holding the Slurm binaries; "" means PATH
}

// Run implements Runner.
func (r ExecRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	path := name
	if r.Dir != "" {
		path = r.Dir + "/" + name
	}
	cmd := exec.CommandContext(ctx, path, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	ce := &CommandError{Name: name, Args: args, ExitCode: -1, Stderr: strings.TrimSpace(stderr.String()), Err: err}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Exited() {
		ce.ExitCode = ee.ExitCode()
	}
	if ctx.Err() != nil {
		ce.Err = fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	return stdout.Bytes(), ce
}

// stderrOf returns the standard error of a failed command, or "".
func stderrOf(err error) string {
	var ce *CommandError
	if errors.As(err, &ce) {
		return ce.Stderr
	}
	return ""
}
