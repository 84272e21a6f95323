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
// output to JobSpec.LogPath, exports Options.Env and JobSpec.Env, and runs
// the worker's argv, every word single-quoted.
//
// A single poller goroutine runs one `qstat -xml` per PollInterval, which
// lists every job of the user, whatever their number; for jobs that have
// left qstat it runs one `qacct -b <earliest start> -j <prefix>_*`, at most
// once per AccountingInterval, and waits out the qmaster's accounting
// flush. Kill and Shutdown use qdel and wait until the jobs left qstat.
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
//   - a job that leaves qstat and has no accounting record after
//     AccountingWait (deleted before it started, or accounting off) is
//     Lost.
//
// Caveats, bluntly:
//
//   - Issue is synchronous: it returns once qsub has answered, about 30 ms
//     on an idle qmaster, 90 ms through Debian's /usr/bin wrapper scripts
//     (see ExecRunner). A leader issuing thousands of jobs spends that time
//     in Issue.
//   - Status is as old as the last poll (PollInterval, default 5 s), and
//     the exit status as late as the accounting flush (reporting_params
//     flush_time, 15 s by default on a cluster).
//   - qacct reads the whole accounting file on every run. The window (-b)
//     and the name pattern bound what it prints, not what it reads: on a
//     cluster with years of accounting, each run costs the qmaster host's
//     disk a read of that file.
//   - Exit statuses 99 and 100 mean something to Grid Engine (reschedule;
//     error state): the job script turns them into 1 and says so in the
//     log.
//   - h_rt is enforced with SIGKILL: a worker has no chance to write a
//     result or a last line. Its log ends where the job was.
//   - Memory is requested, not enforced, with the default mem_free. Do not
//     use h_vmem for Go workers: it limits address space.
//   - Preemptible is ignored; GPUs need Options.GPUResource (no standard
//     complex exists), disk Options.DiskResource.
//   - The working directory and the log path must be on a file system the
//     execution hosts share with the leader; nothing checks this.
//   - Jobs submitted by a leader that crashed are not found automatically:
//     the leader must record BackingID for each job and call Adopt after a
//     restart. Shutdown deletes only the jobs this value issued or adopted.
package gridengine
