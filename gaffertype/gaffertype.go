// Package gaffertype holds the few types that gaffer's packages share,
// so that each can use them without importing another: the job store
// records what the batch system is asked for, and neither imports the
// other. (River's rivertype does the same.) The root package and
// batchsystem name them too.
package gaffertype

import "time"

// Accelerator is a request for accelerators of one kind, such as GPUs.
type Accelerator struct {
	Kind  string `json:"kind"`            // "gpu" is the only kind most systems know
	Count int    `json:"count"`           // how many; 0 means 1
	Model string `json:"model,omitempty"` // e.g. "nvidia-tesla-k80"; empty means any
}

// Requirements is what one job asks of the machine that runs it.
//
// A zero field means "the default" when the leader fills in requirements
// from its configuration; by the time a JobSpec reaches a BatchSystem, the
// leader has filled every field it has a default for.
type Requirements struct {
	Cores        float64       `json:"cores,omitempty"`        // fractional cores; 0.1 is the smallest unit most systems account
	Memory       int64         `json:"memory,omitempty"`       // bytes
	Disk         int64         `json:"disk,omitempty"`         // bytes of scratch disk
	Accelerators []Accelerator `json:"accelerators,omitempty"` // none by default
	Preemptible  bool          `json:"preemptible,omitempty"`  // may run on a node that can be taken away
	Walltime     time.Duration `json:"walltime,omitempty"`     // expected upper bound on run time; 0 means none
}

// AcceleratorCount returns how many accelerators of kind r asks for.
func (r Requirements) AcceleratorCount(kind string) int {
	n := 0
	for _, a := range r.Accelerators {
		if a.Kind == kind || kind == "" {
			if a.Count == 0 {
				n++
			} else {
				n += a.Count
			}
		}
	}
	return n
}
