package gridengine

import (
	"fmt"
	"strings"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
)

// phase is what the adapter makes of a job's qstat state.
type phase int

const (
	phaseWaiting   phase = iota // queued, held, rescheduled: issued, not running
	phaseRunning                // transferring or running
	phaseSuspended              // started, then suspended: issued, not running
	phaseError                  // E: Grid Engine will not run it until someone clears it
	phaseGone                   // left qstat: finished, or deleted
	phaseFinished               // reported, or ready to be
)

// stateLetters are the letters of qstat's state column that Son of Grid
// Engine 8.1 prints; a state is a combination, such as "hqw", "Eqw", "dr"
// or "Rr".
const stateLetters = "dEhrRsStTwqz"

// classify returns the phase of a qstat state and whether every letter of
// it is one this adapter knows. An unknown letter (a newer or other Grid
// Engine) counts as waiting, so the job stays issued: if it never comes
// back, the leader's rescue of missing or over-long jobs deals with it.
func classify(state string) (phase, bool) {
	known := state != ""
	for _, c := range state {
		if !strings.ContainsRune(stateLetters, c) {
			known = false
		}
	}
	switch {
	case strings.ContainsRune(state, 'E'):
		return phaseError, known
	case strings.ContainsAny(state, "sST"):
		// s: the job, S: its queue, T: a load threshold suspended it.
		return phaseSuspended, known
	case strings.ContainsAny(state, "rt"):
		// t: being transferred to the execution host; about to run.
		return phaseRunning, known
	}
	return phaseWaiting, known
}

// describeState says what a state means, for SchedulingStatus.
func describeState(state string) string {
	switch ph, _ := classify(state); {
	case ph == phaseError:
		return "in error state"
	case ph == phaseSuspended:
		return "suspended"
	case strings.ContainsRune(state, 'd'):
		return "being deleted"
	case strings.ContainsRune(state, 'h'):
		return "on hold"
	case strings.ContainsRune(state, 'R'):
		return "rescheduled, waiting"
	case ph == phaseRunning:
		return "running"
	}
	return "waiting"
}

// Grid Engine's failure codes (sge_status(5)) that exitFor treats apart.
const (
	failedNone        = 0
	failedSignal      = 17  // "through signal"
	failedReschedule  = 25  // "rescheduling": the job runs again
	failedApplication = 30  // "application error returned": the job exited 100
	failedLimit       = 37  // "qmaster enforced h_rt, h_cpu, or h_vmem limit"
	failedGeneral     = 100 // "assumedly after job": deleted, or killed by a signal
)

// final reports whether a record is a job's last: a record of failure
// 25 is that of a run Grid Engine is about to start again.
func (r acctRecord) final() bool { return r.Failed != failedReschedule }

// exitFor turns an accounting record into what the leader sees. hrt is
// the h_rt the job asked for (0 for none), to name the limit that killed
// it: code 37 covers h_rt, h_cpu and h_vmem alike.
//
// A failed job never reports exit code 0: Grid Engine records 0 for jobs
// it could not start, and that must not read as success.
func exitFor(r acctRecord, hrt time.Duration) (int, batchsystem.ExitReason, string) {
	code := r.Exit
	if code < 0 || code > 255 {
		code = batchsystem.ExitUnavailable
	}
	var reason batchsystem.ExitReason
	msg := fmt.Sprintf("Grid Engine job %s", r.Number)
	why := fmt.Sprintf("failed %d", r.Failed)
	if r.FailedText != "" {
		why += ": " + r.FailedText
	}
	switch r.Failed {
	case failedNone:
		if code == 0 {
			return 0, batchsystem.Finished, msg + " exited 0"
		}
		reason = batchsystem.Failed
		msg += fmt.Sprintf(" exited %d", code)
		if code > 128 && code < 128+65 {
			msg += fmt.Sprintf(" (signal %d)", code-128)
		}
		return code, reason, msg
	case failedLimit:
		reason = batchsystem.Killed
		if hrt > 0 && r.HasWall && r.Wall+time.Second >= hrt {
			msg += fmt.Sprintf(" killed at its h_rt time limit of %s after %s (%s)", formatHRT(hrt), r.Wall, why)
		} else {
			msg += fmt.Sprintf(" killed for exceeding a limit (%s)", why)
		}
	case failedGeneral, failedSignal:
		reason = batchsystem.Killed
		msg += " killed"
		if code > 128 && code < 128+65 {
			msg += fmt.Sprintf(" by signal %d", code-128)
		}
		msg += fmt.Sprintf(" (%s: qdel, or a signal from outside the job)", why)
	case failedApplication:
		reason = batchsystem.Failed
		msg += fmt.Sprintf(" exited %d (%s)", code, why)
	default:
		// Codes 1 to 36 mostly mean the job could not be started: its
		// output file, shell or working directory, a prolog, the
		// execution daemon.
		reason = batchsystem.Error
		msg += fmt.Sprintf(" could not run (%s)", why)
	}
	if code == 0 {
		code = batchsystem.ExitUnavailable
	}
	return code, reason, msg
}
