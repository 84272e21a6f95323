package scaler

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRuntimeModelLearnsMeansPerKind(t *testing.T) {
	var m RuntimeModel
	require.Equal(t, DefaultRuntime, m.Runtime("align"), "nothing seen: the default")
	m.Default = 5 * time.Minute
	require.Equal(t, 5*time.Minute, m.Runtime("align"))

	m.Observe("align", 10*time.Second)
	m.Observe("align", 20*time.Second)
	m.Observe("sort", 60*time.Second)
	require.Equal(t, 15*time.Second, m.Runtime("align"))
	require.Equal(t, 60*time.Second, m.Runtime("sort"))
	require.Equal(t, 30*time.Second, m.Runtime("call"), "unseen kind: the mean over all jobs")
	require.Equal(t, 2, m.Seen("align"))
	require.Equal(t, 0, m.Seen("call"))
}
