//go:build !race

package gaffer_test

const raceEnabled = false
