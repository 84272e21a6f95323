package jobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"

	"github.com/google/uuid"
)

// FileID names a file in a workflow's file store.
type FileID string

var fileIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// Files is a workflow's file store: a directory, shared with the workers,
// where jobs write files that other jobs read. It lives outside the
// database because files are big and because workers, which never open
// the database, write them. Every write is atomic: a file appears under
// its ID complete or not at all.
//
// The zero value is not usable; call NewFiles.
type Files struct {
	dir string
}

// NewFiles returns the file store rooted at dir, creating dir if needed.
func NewFiles(dir string) (*Files, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("jobstore: file store: %w", err)
	}
	return &Files{dir: dir}, nil
}

// Dir returns the directory the files live in.
func (f *Files) Dir() string { return f.dir }

func (f *Files) path(id FileID) (string, error) {
	if !fileIDPattern.MatchString(string(id)) {
		return "", fmt.Errorf("%w: file id %q is malformed", ErrNotFound, id)
	}
	return filepath.Join(f.dir, string(id[:2]), string(id)), nil
}

// Write stores everything read from r as a new file and returns its ID.
func (f *Files) Write(ctx context.Context, r io.Reader) (FileID, error) {
	id := FileID(uuidHex())
	p, _ := f.path(id)
	if err := writeAtomic(ctx, p, r); err != nil {
		return "", err
	}
	return id, nil
}

// Import copies the local file at path into the store.
func (f *Files) Import(ctx context.Context, path string) (FileID, error) {
	src, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("jobstore: import: %w", err)
	}
	defer src.Close()
	return f.Write(ctx, src)
}

// Open opens a stored file for reading.
func (f *Files) Open(id FileID) (io.ReadCloser, error) {
	p, err := f.path(id)
	if err != nil {
		return nil, err
	}
	r, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: file %s", ErrNotFound, id)
	}
	return r, err
}

// Export copies a stored file to the local path, atomically.
func (f *Files) Export(ctx context.Context, id FileID, path string) error {
	r, err := f.Open(id)
	if err != nil {
		return err
	}
	defer r.Close()
	return writeAtomic(ctx, path, r)
}

// Delete removes a stored file; deleting a missing file is not an error.
func (f *Files) Delete(id FileID) error {
	p, err := f.path(id)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Exists reports whether a file is stored under id.
func (f *Files) Exists(id FileID) bool {
	p, err := f.path(id)
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

func uuidHex() string {
	u := uuid.New()
	const hex = "0123456789abcdef"
	b := make([]byte, 32)
	for i, c := range u {
		b[2*i], b[2*i+1] = hex[c>>4], hex[c&15]
	}
	return string(b)
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// writeAtomic writes r to a temporary file beside path and renames it into
// place, so readers see the whole file or none of it.
func writeAtomic(ctx context.Context, path string, r io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	_, err = io.Copy(tmp, ctxReader{ctx, r})
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("jobstore: write %s: %w", path, err)
	}
	return nil
}
