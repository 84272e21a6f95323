//go:build race

package gaffer_test

// raceEnabled: the race detector's own memory does not fit the limits
// some tests set on worker processes.
const raceEnabled = true
