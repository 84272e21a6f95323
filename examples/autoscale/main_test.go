package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestExampleRunsToTheEndAndCharts(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), &out, 40))
	s := out.String()
	for _, want := range []string{"merge", "small  |", "medium |", "large  |", "total jobs 2502 (failed 0, lost 0)", "node-hours"} {
		require.Contains(t, s, want)
	}
	require.Contains(t, s, "nodes still up at the end: 0")
	// Each type's row has as many columns as asked for.
	rows := 0
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, "| peak ") {
			rows++
			require.Len(t, line[strings.Index(line, "|")+1:strings.LastIndex(line, "|")], 40, line)
		}
	}
	require.Equal(t, 3, rows)
}
