//go:build !unix

package gaffertest

// canSeeProcesses: off Unix the suite does not look processes up by pid.
const canSeeProcesses = false

func alive(pid int) bool { return false }
