//go:build unix

package gaffer

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// takeStdio moves a pool worker's channel to the leader off descriptors 0
// and 1, which jobs and the processes they start inherit: 0 then reads
// nothing (/dev/null) and 1 writes to standard error.
func takeStdio() (in, out *os.File, err error) {
	inFD, err := syscall.Dup(0)
	if err != nil {
		return nil, nil, fmt.Errorf("moving the channel's input: %w", err)
	}
	outFD, err := syscall.Dup(1)
	if err != nil {
		return nil, nil, fmt.Errorf("moving the channel's output: %w", err)
	}
	syscall.CloseOnExec(inFD)
	syscall.CloseOnExec(outFD)
	null, err := os.Open(os.DevNull)
	if err != nil {
		return nil, nil, err
	}
	if err := unix.Dup2(int(null.Fd()), 0); err != nil {
		return nil, nil, fmt.Errorf("closing standard input: %w", err)
	}
	null.Close()
	if err := unix.Dup2(2, 1); err != nil {
		return nil, nil, fmt.Errorf("sending standard output to standard error: %w", err)
	}
	return os.NewFile(uintptr(inFD), "gaffer-pool-in"), os.NewFile(uintptr(outFD), "gaffer-pool-out"), nil
}
