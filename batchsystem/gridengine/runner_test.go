package gridengine

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDebianRunner(t *testing.T) {
	dir := t.TempDir()
	defaults := filepath.Join(dir, "gridengine")
	require.NoError(t, os.WriteFile(defaults, []byte("# comment\nSGE_ROOT=/opt/sge\nSGE_CELL=\"cell2\"\nSGE_ARCH=`\"$SGE_ROOT/util/arch\"`\n"), 0o644))
	noEnv := func(string) string { return "" }

	_, err := debianRunner(dir, defaults, noEnv)
	require.Error(t, err, "no binaries")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "qsub"), nil, 0o755))

	r, err := debianRunner(dir, defaults, noEnv)
	require.NoError(t, err)
	require.Equal(t, ExecRunner{Dir: dir, Env: []string{"SGE_ROOT=/opt/sge", "SGE_CELL=cell2"}}, r)

	r, err = debianRunner(dir, filepath.Join(dir, "missing"), func(k string) string {
		if k == "SGE_CELL" {
			return "fromenv"
		}
		return ""
	})
	require.NoError(t, err)
	require.Equal(t, []string{"SGE_ROOT=/var/lib/gridengine", "SGE_CELL=fromenv"}, r.Env, "Debian's defaults, and the environment first")
}
