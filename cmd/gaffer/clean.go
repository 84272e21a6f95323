package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/jobstore"
)

var cleanCmd = &command{
	name: "clean", args: "STORE",
	summary: "remove the store and its work directory",
	help: `
Removes the store file and the workflow's work directory (job folders,
kept logs, the live snapshot). Refused while a leader runs the workflow
(or any process holds the store), for a path that is not a gaffer store,
and for a work directory whose marker names another store. A damaged
store is removed, with its work directory, when the marker of the work
directory next to it (STORE.work) names it.`,
	setup: func(fs *flag.FlagSet) func(context.Context, *cli, []string) int {
		return func(ctx context.Context, c *cli, args []string) int {
			if len(args) != 1 {
				return c.errorf("want one STORE, got %d arguments", len(args))
			}
			t, err := open(ctx, args[0], c.workDir)
			if errors.Is(err, jobstore.ErrCorrupt) {
				return cleanDamaged(c, args[0], c.workDir, err)
			}
			if err != nil {
				return c.fail(err)
			}
			defer t.close()
			if t.held {
				if s := t.snap; s != nil && !s.Final {
					return c.errorf("%s: a leader is running the workflow (pid %d%s): end it first (gaffer cancel %s), then clean", t.path, s.PID, onHost(s.Host), t.path)
				}
				return c.errorf("%s: another process holds the store (a leader?): end it first, then clean", t.path)
			}
			if err := checkOwnWorkDir(t.store, t.workDir); err != nil {
				return c.fail(err)
			}
			t.close()
			return remove(c, t.store, t.workDir)
		}
	},
}

// checkOwnWorkDir refuses to remove a directory that is not the work
// directory of store: one without a marker, or whose marker names
// another store. A missing directory is fine.
func checkOwnWorkDir(store, workDir string) error {
	if _, err := os.Stat(workDir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	owner, _, err := gaffer.WorkDirStore(workDir)
	if err != nil {
		return fmt.Errorf("%s: not removing %s: %w", store, workDir, err)
	}
	if owner != "" && owner != store {
		return fmt.Errorf("%s: not removing %s: it is the work directory of another store, %s", store, workDir, owner)
	}
	return nil
}

func remove(c *cli, store, workDir string) int {
	if err := os.Remove(store); err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(c.stdout, "removed %s\n", store)
	if _, err := os.Stat(workDir); errors.Is(err, os.ErrNotExist) {
		return exitOK
	}
	if err := os.RemoveAll(workDir); err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(c.stdout, "removed %s\n", workDir)
	return exitOK
}

// cleanDamaged removes a store that cannot be read, when the work
// directory next to it (or the one given) names it.
func cleanDamaged(c *cli, path, workDir string, openErr error) int {
	store, err := filepath.Abs(path)
	if err != nil {
		return c.fail(err)
	}
	if workDir == "" {
		workDir = store + ".work"
	}
	owner, _, err := gaffer.WorkDirStore(workDir)
	if err != nil || owner != store {
		return c.errorf("%v; its work directory is unknown (%s does not name it), so nothing was removed", openErr, workDir)
	}
	release, err := jobstore.LockShared(store)
	if errors.Is(err, jobstore.ErrLocked) {
		return c.errorf("%s: another process holds the store (a leader?): end it first, then clean", path)
	}
	if release != nil {
		release()
	}
	fmt.Fprintf(c.stderr, "gaffer clean: %v; removing it anyway, with the work directory that names it\n", openErr)
	return remove(c, store, workDir)
}
