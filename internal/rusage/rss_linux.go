package rusage

import (
	"bytes"
	"os"
	"strconv"
)

func rss() (int64, bool) {
	// statm: size resident shared text lib data dt, in pages.
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0, false
	}
	pages, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		return 0, false
	}
	return pages * int64(os.Getpagesize()), true
}
