//go:build !linux

package local

// limitMemory does nothing here: Options.EnforceMemory is Linux only.
func limitMemory(int, int64) error { return nil }

const memoryEnforced = false
