package jobstore_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/jobstore"
)

func errorsIs(err, target error) bool { return errors.Is(err, target) }

func TestFilesRoundTrip(t *testing.T) {
	ctx := t.Context()
	f, err := jobstore.NewFiles(filepath.Join(t.TempDir(), "files"))
	require.NoError(t, err)
	id, err := f.Write(ctx, strings.NewReader("hello"))
	require.NoError(t, err)
	require.True(t, f.Exists(id))
	r, err := f.Open(id)
	require.NoError(t, err)
	b, _ := io.ReadAll(r)
	r.Close()
	require.Equal(t, "hello", string(b))

	src := filepath.Join(t.TempDir(), "in.txt")
	require.NoError(t, os.WriteFile(src, []byte("imported"), 0o600))
	id2, err := f.Import(ctx, src)
	require.NoError(t, err)
	require.NotEqual(t, id, id2)
	dst := filepath.Join(t.TempDir(), "sub", "out.txt")
	require.NoError(t, f.Export(ctx, id2, dst))
	b, err = os.ReadFile(dst)
	require.NoError(t, err)
	require.Equal(t, "imported", string(b))

	require.NoError(t, f.Delete(id))
	require.NoError(t, f.Delete(id))
	_, err = f.Open(id)
	require.ErrorIs(t, err, jobstore.ErrNotFound)
	_, err = f.Open("../../etc/passwd")
	require.ErrorIs(t, err, jobstore.ErrNotFound, "IDs cannot reach outside the store")
}
