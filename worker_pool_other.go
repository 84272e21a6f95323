//go:build !unix

package gaffer

import "os"

// takeStdio keeps a pool worker's channel to the leader to itself: here
// only Go code is redirected (os.Stdin reads nothing, os.Stdout writes to
// standard error). A job that writes to the descriptors themselves breaks
// the channel, which the frames' checksums detect.
func takeStdio() (in, out *os.File, err error) {
	in, out = os.Stdin, os.Stdout
	null, err := os.Open(os.DevNull)
	if err != nil {
		return nil, nil, err
	}
	os.Stdin, os.Stdout = null, os.Stderr
	return in, out, nil
}
