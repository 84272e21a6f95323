// Package rusage reads this process's CPU time and peak resident set for
// benchmarks, on every operating system gaffer builds for. Where a figure
// cannot be had, the functions say so and benchmarks print "unknown".
package rusage

import "time"

// CPU returns the user and system CPU time this process has used so far.
func CPU() (time.Duration, bool) { return cpu() }

// PeakRSS returns the largest resident set, in bytes, that this process
// (not its children) has had.
func PeakRSS() (int64, bool) { return peakRSS() }

// RSS returns this process's resident set now, in bytes: on Linux read
// from /proc/self/statm; elsewhere the peak (PeakRSS), the nearest figure
// the platform gives without a dependency.
func RSS() (int64, bool) { return rss() }
