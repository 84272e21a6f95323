package gaffer

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gafferhq/gaffer/jobstore"
)

// A store holds one workflow, named by its root job's type and a digest
// of the root's input. Run with a root is a request to run that workflow:
// on a store that holds another, it is refused rather than resumed, so
// that a changed input never returns the old result.

// digest is the SHA-256 of a root's input, hex.
func digest(input []byte) string {
	sum := sha256.Sum256(input)
	return hex.EncodeToString(sum[:])
}

// sameWorkflow refuses a root that is not the one the store holds. Its
// stored input, when short, is shown beside the new one.
func (l *Leader) sameWorkflow(m jobstore.Meta, root Node, stored []byte) error {
	if root == nil || m.Status == jobstore.StatusNew {
		return nil
	}
	n := root.node()
	afresh := fmt.Sprintf("to start afresh, remove the store %s and its work directory %s, or give another store path", l.cfg.Store, l.cfg.WorkDir)
	if m.RootKind != "" && m.RootKind != n.kind {
		return fmt.Errorf("%w: the store's root is of type %q, Run was given %q; %s", ErrWorkflowMismatch, m.RootKind, n.kind, afresh)
	}
	if m.RootDigest == "" || m.RootDigest == digest(n.input) {
		return nil // the same workflow (or a store from before digests)
	}
	what := "another input"
	if len(stored) > 0 && len(stored) <= 200 && len(n.input) <= 200 {
		what = fmt.Sprintf("input %s where the store's root has %s", n.input, stored)
	}
	return fmt.Errorf("%w: Run was given a %s root with %s (the store holds workflow %s, %s); %s",
		ErrWorkflowMismatch, n.kind, what, m.WorkflowID, m.Status, afresh)
}

// knownKinds refuses, before anything is loaded or run, a store with jobs
// of types this program has not registered: nothing is marked failed, so
// registering them and running again works.
func knownKinds(kinds map[string]int) error {
	var missing []string
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		if _, ok := lookupType(k); !ok {
			missing = append(missing, fmt.Sprintf("%q (%d jobs)", k, kinds[k]))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%w: the store holds jobs of types this program has not registered: %s; register them (gaffer.Register, gaffer.RegisterService) and run again: nothing was changed",
		ErrUnknownJobType, strings.Join(missing, ", "))
}

// markerFile marks a work directory as a gaffer workflow's; requests from
// other processes (RequestCancel) refuse a directory without one.
const markerFile = "gaffer-workdir.json"

type marker struct {
	Store      string `json:"store,omitempty"`
	WorkflowID string `json:"workflow_id"`
}

// mark writes the work directory's marker.
func (l *Leader) mark() error {
	if err := os.MkdirAll(l.cfg.WorkDir, 0o755); err != nil {
		return fmt.Errorf("gaffer: work directory: %w", err)
	}
	b, err := json.Marshal(marker{Store: l.cfg.Store, WorkflowID: l.meta.WorkflowID})
	if err == nil {
		err = writeFileAtomic(filepath.Join(l.cfg.WorkDir, markerFile), b, false)
	}
	if err != nil {
		return fmt.Errorf("gaffer: marking the work directory: %w", err)
	}
	return nil
}

// ErrNotWorkDir is returned for a path that is not a gaffer work
// directory.
var ErrNotWorkDir = errors.New("gaffer: not a gaffer work directory")

// checkWorkDir refuses a path that holds no marker: a mistyped path must
// not be created, nor a request left where no leader will look.
func checkWorkDir(workDir string) error {
	if _, err := os.Stat(filepath.Join(workDir, markerFile)); err != nil {
		return fmt.Errorf("%w: %s has no %s (a leader writes it when it starts): %w", ErrNotWorkDir, workDir, markerFile, err)
	}
	return nil
}
