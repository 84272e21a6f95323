//go:build unix

package gaffer

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/gafferhq/gaffer/internal/rusage"
)

// folderWorkerMain is a pilot's reused worker (package batchsystem/pilot,
// reuse.go): it reads "folder<TAB>log\n" lines on standard input and runs
// each job as a one-job worker would, its output (descriptors 1 and 2)
// sent to the job's log, its result file written in its folder; it
// answers each with the job's exit code on a line of its standard output.
// It exits at the end of its input, and after a job a signal stopped.
func folderWorkerMain() int {
	replyFD, err := syscall.Dup(1)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gaffer folder worker: %v\n", err)
		return 2
	}
	syscall.CloseOnExec(replyFD)
	reply := os.NewFile(uintptr(replyFD), "gaffer-folder-replies")
	ownErr, err := syscall.Dup(2) // between jobs: the pilot's log
	if err != nil {
		fmt.Fprintf(os.Stderr, "gaffer folder worker: %v\n", err)
		return 2
	}
	syscall.CloseOnExec(ownErr)
	point := func(fd int) error {
		if err := unix.Dup2(fd, 1); err != nil {
			return err
		}
		return unix.Dup2(fd, 2)
	}
	if err := point(ownErr); err != nil {
		fmt.Fprintf(os.Stderr, "gaffer folder worker: %v\n", err)
		return 2
	}
	in := bufio.NewReader(os.Stdin)
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			return 0 // the pilot closed our input: done
		}
		dir, logPath, _ := strings.Cut(strings.TrimSuffix(line, "\n"), "\t")
		code := func() int {
			if logPath != "" {
				f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
				if err != nil {
					fmt.Fprintf(os.Stderr, "gaffer folder worker: opening the job's log: %v\n", err)
					return 3
				}
				defer f.Close()
				if err := point(int(f.Fd())); err != nil {
					fmt.Fprintf(os.Stderr, "gaffer folder worker: %v\n", err)
					return 3
				}
				defer point(ownErr) //nolint:errcheck // back to the pilot's log
			}
			if err := os.Chdir(dir); err != nil {
				fmt.Fprintf(os.Stderr, "gaffer folder worker: %v\n", err)
				return 3
			}
			cpu0, _ := rusage.CPU()
			return runFolder(dir, cpu0)
		}()
		if _, err := fmt.Fprintf(reply, "%d\n", code); err != nil {
			return 0
		}
		if code == 143 {
			return 0 // stopped by a signal: the pilot does not reuse us
		}
	}
}
