package slurm

import "github.com/gafferhq/gaffer/batchsystem"

// phase is what the adapter makes of a Slurm job state.
type phase int

const (
	phaseWaiting  phase = iota // queued, held, requeued, suspended: issued, not running
	phaseRunning               // its processes run (or are being cleaned up)
	phaseFinished              // terminal: report it
)

// terminalReasons maps Slurm's terminal states to the reason reported to the
// leader. It follows Toil's table (src/toil/batchSystems/slurm.py) with one
// deliberate change: PREEMPTED is Lost, not Killed, because gaffer's
// ExitReason documents preemption as Lost, and a preempted job deserves a
// retry that does not count against it the way a kill does.
var terminalReasons = map[string]batchsystem.ExitReason{
	"BOOT_FAIL":     batchsystem.Lost,
	"CANCELLED":     batchsystem.Killed,
	"COMPLETED":     batchsystem.Finished,
	"DEADLINE":      batchsystem.Killed,
	"FAILED":        batchsystem.Failed,
	"NODE_FAIL":     batchsystem.Lost,
	"OUT_OF_MEMORY": batchsystem.MemLimit,
	"PREEMPTED":     batchsystem.Lost,
	"REVOKED":       batchsystem.Killed,
	"SPECIAL_EXIT":  batchsystem.Failed,
	"TIMEOUT":       batchsystem.Killed,
}

// runningStates are the non-terminal states in which the job's processes
// exist. COMPLETING is among them: the batch script has ended but Slurm is
// still cleaning up, and the final state (and exit code) comes after.
var runningStates = map[string]bool{
	"RUNNING":    true,
	"COMPLETING": true,
	"SIGNALING":  true,
	"STAGE_OUT":  true,
}

// waitingStates are the other non-terminal states Slurm 22.05 to 25.x know.
var waitingStates = map[string]bool{
	"PENDING":       true,
	"CONFIGURING":   true,
	"REQUEUED":      true,
	"REQUEUE_FED":   true,
	"REQUEUE_HOLD":  true,
	"RESV_DEL_HOLD": true,
	"RESIZING":      true,
	"STOPPED":       true,
	"SUSPENDED":     true,
}

// classify returns the phase of a Slurm state and whether the state is one
// this adapter knows. An unknown state (a newer Slurm) counts as waiting:
// the job stays issued and, if it never comes back, the leader's rescue of
// missing or over-long jobs deals with it. Toil raises instead, which kills
// the workflow over one odd line.
func classify(state string) (phase, bool) {
	switch {
	case terminalReasons[state] != 0:
		return phaseFinished, true
	case runningStates[state]:
		return phaseRunning, true
	case waitingStates[state]:
		return phaseWaiting, true
	}
	return phaseWaiting, false
}

// exitFor turns a terminal state with its exit code and signal into what
// the leader sees. A signal becomes 128+signal, as a shell reports it. A
// job that did not COMPLETE never reports 0: Slurm records 0:0 for a job it
// cancelled or timed out before the script could exit, and that must not
// read as success. An unknown exit status is ExitUnavailable.
func exitFor(st jobStatus) (int, batchsystem.ExitReason) {
	reason, ok := terminalReasons[st.State]
	if !ok {
		return batchsystem.ExitUnavailable, batchsystem.Error
	}
	code := st.Exit
	switch {
	case st.Signal > 0:
		code = 128 + st.Signal
	case code < 0 && st.State == "COMPLETED":
		code = 0 // Slurm only says COMPLETED for exit status 0
	case code < 0:
		code = batchsystem.ExitUnavailable
	}
	if st.State != "COMPLETED" && code == 0 {
		code = batchsystem.ExitUnavailable
	}
	return code, reason
}
