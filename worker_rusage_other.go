//go:build !unix

package gaffer

import "time"

// selfUsage is unknown here: attempts record 0.
func selfUsage() (time.Duration, int64) { return 0, 0 }
