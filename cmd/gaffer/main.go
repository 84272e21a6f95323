// Command gaffer inspects and controls gaffer workflows, running or not:
//
//	gaffer status STORE          the workflow's state, counts, failed jobs
//	gaffer why STORE [JOB...]    why jobs are not running
//	gaffer stats STORE           per job type: jobs, outcomes, times, memory
//	gaffer logs STORE JOB        the kept logs of a job's attempts
//	gaffer cancel STORE [JOB...] cancel jobs, or the whole workflow
//	gaffer clean STORE           remove the store and its work directory
//
// STORE is the workflow's store file (gaffer.Config.Store); the work
// directory is found from it. While a leader runs, its store is locked:
// gaffer then reads the leader's live snapshot in the work directory and
// asks it through files there; otherwise it opens the store read-only.
// docs/gaffer-command.md has the design and examples.
//
// Install it with
//
//	go install github.com/gafferhq/gaffer/cmd/gaffer@latest
//
// Exit status: 0, or 1 when status finds the workflow failed, or 2 on
// any error (usage included).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit statuses.
const (
	exitOK     = 0
	exitFailed = 1 // status: the workflow failed
	exitError  = 2 // an error, usage included
)

// command is one subcommand: its flags are defined on fs by setup, and
// do runs it on the positional arguments.
type command struct {
	name, args, summary, help string
	setup                     func(fs *flag.FlagSet) func(ctx context.Context, c *cli, args []string) int
}

// cli is what a command writes to, and its common flags.
type cli struct {
	name           string // the command's, for errors
	stdout, stderr io.Writer
	workDir        string // -workdir
}

// errorf reports an error on stderr and returns exitError.
func (c *cli) errorf(format string, args ...any) int {
	fmt.Fprintf(c.stderr, "gaffer %s: %s\n", c.name, fmt.Sprintf(format, args...))
	return exitError
}

func (c *cli) fail(err error) int { return c.errorf("%v", err) }

var commands []*command

func init() {
	commands = []*command{statusCmd, whyCmd, statsCmd, logsCmd, cancelCmd, cleanCmd, reportCmd, graphCmd}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `gaffer inspects and controls gaffer workflows, running or not.

usage: gaffer COMMAND [flags] STORE [args]

commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-28s %s\n", c.name+" "+c.args, c.summary)
	}
	fmt.Fprint(w, `
STORE is the workflow's store file (gaffer.Config.Store); the work
directory is found from it. While a leader runs the workflow, gaffer
reads the snapshot the leader keeps in the work directory, and never
waits for the leader. Run 'gaffer COMMAND -h' for a command's flags.

Exit status: 0; 1 when status finds the workflow failed; 2 on an error.
`)
}

// run runs the command line args (without the program's name).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitError
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 && args[0] == "help" {
			return run(ctx, []string{args[1], "-h"}, stdout, stderr)
		}
		usage(stdout)
		return exitOK
	}
	var cmd *command
	for _, c := range commands {
		if c.name == args[0] {
			cmd = c
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "gaffer: unknown command %q\n\n", args[0])
		usage(stderr)
		return exitError
	}
	c := &cli{name: cmd.name, stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("gaffer "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.workDir, "workdir", "", "the work directory, when it is not the one the store records (needed only while a leader with a work directory other than STORE.work runs)")
	do := cmd.setup(fs)
	help := func(w io.Writer) {
		fmt.Fprintf(w, "usage: gaffer %s [flags] %s\n\n%s\n", cmd.name, cmd.args, strings.TrimSpace(cmd.help))
		fmt.Fprintln(w, "\nflags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	pos, err := parse(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		help(stdout)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "gaffer %s: %v\n", cmd.name, err)
		help(stderr)
		return exitError
	}
	return do(ctx, c, pos)
}

// parse parses flags wherever they are among the arguments (gaffer status
// S -json as well as gaffer status -json S), and returns the others. "--"
// ends the flags.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	return pos, nil
}
