package local

import "golang.org/x/sys/unix"

// procStart returns when the process pid started, in microseconds since
// the epoch: with the pid, it names a process for good, where a pid alone
// may be reused. A zombie counts as gone.
func procStart(pid int) (uint64, bool) {
	kp, err := unix.SysctlKinfoProc("kern.proc.pid", pid)
	if err != nil || kp.Proc.P_pid != int32(pid) || kp.Proc.P_stat == 5 /* SZOMB */ {
		return 0, false
	}
	tv := kp.Proc.P_starttime
	return uint64(tv.Sec)*1e6 + uint64(tv.Usec), true
}

func machineMemory() int64 {
	if n, err := unix.SysctlUint64("hw.memsize"); err == nil && n > 0 {
		return int64(n)
	}
	return 8 << 30 // a guess; set Options.Memory instead
}
