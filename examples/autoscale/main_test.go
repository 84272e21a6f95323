package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestExampleRunsToTheEndAndCharts(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), &out, 40))
	s := out.String()
	// Every chunk went through every stage, and every job ran once: 2000
	// align, 400 sort, 100 call, split, merge and two stage launchers.
	require.Contains(t, s, "workflow result: 2000 of 2000 chunks merged")
	require.Contains(t, s, "total jobs 2504 (failed 0, lost 0)")
	for _, st := range stages {
		require.Contains(t, s, fmt.Sprintf("%-10s %5d jobs done at", st.name, st.jobs))
	}
	// The leader terminated the nodes its scaler started.
	require.Contains(t, s, "nodes still up at the end: 0")
	for _, want := range []string{"small  |", "medium |", "large  |", "node-hours"} {
		require.Contains(t, s, want)
	}
	// Each type's row has as many columns as asked for, and every type
	// was used: the stages need all three.
	rows := 0
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, "| peak ") {
			rows++
			require.Len(t, line[strings.Index(line, "|")+1:strings.LastIndex(line, "|")], 40, line)
			require.NotContains(t, line, "| peak 0", line)
		}
	}
	require.Equal(t, 3, rows)
}
