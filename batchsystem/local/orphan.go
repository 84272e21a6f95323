package local

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// PIDFile is the file a subprocess worker's pid and start time are kept
// in, inside the job's folder (JobSpec.Dir), while it runs.
//
// Where workers do not die with their leader (macOS, Windows: no
// parent-death signal), a leader killed hard leaves them running. The
// next leader issues the unfinished jobs again with the same folders;
// before it starts one, it finds the earlier worker by this file and
// kills it, so that two attempts of a job never run side by side. The
// start time guards against a pid that the system has since given to
// another process.
const PIDFile = "local-worker.pid"

// reapOrphan kills the worker that an earlier leader left running in dir,
// if the pid file names one that is still alive. It reports the pid it
// killed, or 0.
func reapOrphan(dir string) int {
	if dir == "" {
		return 0
	}
	path := filepath.Join(dir, PIDFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	defer os.Remove(path)
	var pid int
	var start uint64
	if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%d %d", &pid, &start); err != nil || pid <= 0 {
		return 0
	}
	if now, ok := procStart(pid); !ok || now != start {
		return 0 // gone, or the pid now names another process
	}
	if pid == os.Getpid() {
		return 0
	}
	killOrphan(pid)
	return pid
}

// writePIDFile records a started worker in its job's folder, where the
// system can tell its processes apart from others' (procStart works).
func writePIDFile(dir string, pid int) {
	if dir == "" {
		return
	}
	start, ok := procStart(pid)
	if !ok {
		return
	}
	line := strconv.Itoa(pid) + " " + strconv.FormatUint(start, 10) + "\n"
	_ = os.WriteFile(filepath.Join(dir, PIDFile), []byte(line), 0o644)
}

// removePIDFile removes the pid file of a worker that has ended, if it
// still names that worker.
func removePIDFile(dir string, pid int) {
	if dir == "" {
		return
	}
	path := filepath.Join(dir, PIDFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	if f := strings.Fields(string(b)); len(f) > 0 && f[0] == strconv.Itoa(pid) {
		_ = os.Remove(path)
	}
}
