//go:build !unix && !windows

package local

import (
	"os"
	"syscall"
)

// On systems with neither Unix process groups nor Windows (js, wasip1,
// plan9; bbolt, and so a leader, does not build there) workers are
// started and killed as single processes.

func procAttr() *syscall.SysProcAttr { return nil }

// WorkersDieWithLeader: no parent-death signal here.
const WorkersDieWithLeader = false

func killTree(p *os.Process) { _ = p.Kill() }

func killOrphan(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Kill()
	}
}

func procStart(pid int) (uint64, bool) { return 0, false }

func machineMemory() int64 { return 8 << 30 }

func freeDisk(dir string) int64 { return 100 << 30 }
