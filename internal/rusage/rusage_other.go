//go:build !unix && !windows

package rusage

import "time"

func cpu() (time.Duration, bool) { return 0, false }

func peakRSS() (int64, bool) { return 0, false }
