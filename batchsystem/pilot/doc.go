// Package pilot groups many small jobs into one cluster submission: a
// pilot is a worker process, started by a cluster adapter as one batch
// job, that pulls jobs from a queue folder on the shared work directory
// and runs each as a child process until it has been idle for a while.
//
// It is cluster-neutral. The adapter (batchsystem/slurm; Grid Engine can
// adopt it the same way) decides how many pilots of which size to submit
// and watches them in its scheduler; this package holds the protocol both
// sides speak, through files only:
//
//	<root>/queue/<owner>/<shape>/<ticket>.json  a job waiting (Ticket), written by the adapter
//	<root>/claimed/<pilot>/<ticket>.json        the same file, renamed there by the pilot that took it
//	<root>/run/<ticket>.json                    Start: the pilot began running it
//	<root>/done/<ticket>.json                   End: its exit, times and node, written once it ended
//	<root>/kill/<ticket>                        flag: the adapter asks the pilot to kill that job only
//	<root>/pilots/<pilot>.json                  Config of a pilot, written by the adapter before submitting it
//	<root>/pilots/<pilot>.alive                 the pilot's heartbeat (its modification time)
//
// A rename is atomic on one file system, so exactly one pilot wins a
// ticket; the adapter withdraws a queued ticket by the same kind of
// rename. Every record is written by temporary file and rename, so a
// reader sees all of it or nothing.
//
// What the pilot does not write says as much as what it does: a pilot
// that is cancelled or dies (preemption, a lost node) writes no End for
// the jobs it was running. The adapter sees the pilot's batch job end in
// its scheduler and reports those jobs Lost.
//
// Per-job semantics kept inside a pilot: each job runs with its own
// Command, Env, working directory and log file, in a process group of
// its own; its Walltime is enforced by the pilot (SIGTERM, then SIGKILL
// after Config.KillGrace, as Slurm does with KillWait); a kill flag stops
// that job only; its End records its own start, end, exit code and node.
// Reused processes (reuse.go, Unix): a job of the pilot's own program in
// worker mode ([program, WorkerArg, folder]) runs in a folder worker of
// that program, started once per environment and fed one job after
// another, instead of a process of its own, since starting one costs most
// of what a tiny job does. The job keeps its own log, result file, exit
// code and CPU time; a job that ends its process (os.Exit, a crash) takes
// down only its worker, and a worker a kill or a time limit stopped is
// never reused. Shared by a worker's jobs: its process group (what a job
// leaves running is not killed when the job ends) and its peak memory.
//
// Not kept: a per-job memory limit. The pilot holds the memory of all its
// slots, and a job that exceeds its share is not stopped by the
// scheduler unless the pilot as a whole exceeds its allocation.
package pilot
