//go:build !linux

package rusage

func rss() (int64, bool) { return peakRSS() }
