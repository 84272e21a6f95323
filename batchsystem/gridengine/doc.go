// Package gridengine is a batchsystem.BatchSystem that runs each gaffer job
// as one Grid Engine job (Son of Grid Engine 8.1 and its relatives: the
// qsub, qstat, qacct and qdel commands).
//
// Issue runs `qsub -terse -w e` with the job's requirements mapped to
// `-pe <ParallelEnv> <cores>` (cores rounded up; none for one core),
// `-l <MemoryResource>=<MiB>M` (mem_free by default, per slot when the
// complex is a per-slot consumable) and `-l h_rt=` (Walltime), the job's
// name (-N), its working directory (-wd) and the leader's environment
// (-V). The job itself is a script on qsub's standard input that sends its
// output to JobSpec.LogPath, exports Options.Env and JobSpec.Env, runs the
// worker's argv, every word single-quoted, and writes the worker's exit
// status to a file in the job's folder (JobSpec.Dir).
//
// A single poller goroutine runs one `qstat -xml` per PollInterval, which
// lists every job of the user, whatever their number. A job that has left
// qstat is reported from its status file; only jobs without one (killed
// by h_rt, qdel or a signal, or without a folder) need qacct, and one
// `qacct -b <earliest start> -j <prefix>_*`, at most once per
// AccountingInterval, covers all of them, waiting out the qmaster's
// accounting flush. Kill and Shutdown use qdel and wait until the jobs
// left qstat.
//
// How Grid Engine's outcomes reach the leader:
//
//   - exit status 0 is Finished; any other, Failed, with the status.
//   - a job killed at its h_rt (qacct's failed 37) is Killed, with a
//     message naming h_rt, as Slurm's TIMEOUT is; one deleted by someone
//     else or killed by a signal from outside (failed 100), Killed.
//   - a job Grid Engine could not start (failed 1 to 36: its working
//     directory, a prolog, the execution daemon) is Error.
//   - a job in error state (Eqw) would wait forever for an administrator:
//     the poller reads its reason with `qstat -j`, deletes it, and reports
//     it as Error with that reason, so the leader retries it.
//   - a job that leaves qstat with no status file and no accounting record
//     after AccountingWait (deleted before it started, or accounting off)
//     is Lost.
//
// Caveats, bluntly:
//
//   - Issue is synchronous: it returns once qsub has answered, 30 ms or so
//     on an idle qmaster, about 90 ms through Debian's /usr/bin wrapper
//     scripts (see ExecRunner), more on a busy machine. A leader issuing
//     thousands of jobs spends that time in Issue.
//   - Status is as old as the last poll (PollInterval, default 5 s). For
//     jobs that need qacct, the exit status is as late as the accounting
//     flush (reporting_params flush_time, 15 s by default).
//   - qacct reads the whole accounting file on every run. The window (-b)
//     and the name pattern bound what it prints, not what it reads: on a
//     cluster with years of accounting, each run costs a read of that
//     file. That is why status files come first.
//   - Exit statuses 99 and 100 mean something to Grid Engine (reschedule;
//     error state): the job script exits 1 instead, and says so in the
//     log. The status file keeps the worker's own status.
//   - h_rt is enforced with SIGKILL: a worker has no chance to write a
//     result or a last line. Its log ends where the job was.
//   - Memory is requested, not enforced, with the default mem_free. Do not
//     use h_vmem for Go workers: it limits address space.
//   - Preemptible is ignored; GPUs need Options.GPUResource (no standard
//     complex exists), disk Options.DiskResource.
//   - Without a LogPath the job's output is dropped (-o /dev/null), rather
//     than left in <name>.o<number> files in the working directory.
//   - The working directory, the job folder and the log must be on a file
//     system the execution hosts share with the leader; nothing checks
//     this. A status file the leader cannot see yet (NFS caches) only
//     sends the job to qacct.
//   - Jobs submitted by a leader that crashed are not found automatically:
//     the leader must record BackingID for each job and call Adopt after a
//     restart. Shutdown deletes only the jobs this value issued or adopted.
package gridengine
