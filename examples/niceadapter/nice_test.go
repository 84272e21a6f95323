//go:build unix

package niceadapter_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/batchsystem/batchsystemtest"
	"github.com/gafferhq/gaffer/examples/niceadapter"
)

func newNice(t *testing.T) batchsystem.BatchSystem {
	s, err := niceadapter.New(niceadapter.Options{Slots: 4})
	require.NoError(t, err)
	return s
}

// The contract, and what adapters most often get wrong.
func TestConformance(t *testing.T) {
	batchsystemtest.Run(t, batchsystemtest.Config{New: newNice})
}
