// Package slurm is a batchsystem.BatchSystem that runs each gaffer job as
// one Slurm batch job.
//
// Issue runs `sbatch --parsable` with the job's requirements mapped to
// --cpus-per-task (cores rounded up), --mem (MiB, rounded up), --tmp
// (disk), --time (Walltime) and --gres=gpu:N, and the worker's argv quoted
// into --wrap as `exec 'arg' 'arg'...` after `export` lines for the job's
// environment. A single poller goroutine asks Slurm about every issued job
// with one `squeue --states=all --jobs=...` per 1000 jobs and, only for jobs
// the controller has forgotten, one sacct; it does so at most once per
// PollInterval, whatever the leader calls. Kill and Shutdown use scancel and
// wait until a poll shows the jobs stopped.
//
// Caveats, bluntly:
//
//   - Issue is synchronous: it returns once sbatch has answered, typically
//     in milliseconds but as long as the controller takes when it is busy.
//     A leader issuing thousands of jobs spends that time in Issue.
//   - Status is as old as the last poll (PollInterval, default 5 s). A job
//     is reported finished up to one interval after Slurm finished it.
//   - Jobs inherit the leader's environment (sbatch's default --export=ALL),
//     then Options.Env and JobSpec.Env on top. If the leader itself runs
//     inside a Slurm allocation, SLURM_* variables Slurm does not reset may
//     leak into the jobs; and SBATCH_* variables in the leader's
//     environment change what sbatch does, as they would on a terminal.
//   - The working directory and the log path must be on a file system the
//     compute nodes share with the leader; nothing checks this.
//   - Requirements Slurm refuses at submission (more cores or memory than
//     the partition allows, with EnforcePartLimits) fail Issue with
//     batchsystem.ErrInsufficientResources. Without EnforcePartLimits such
//     jobs pend forever, and only SchedulingStatus says why.
//   - --tmp is sent for disk requirements; on clusters whose nodes do not
//     configure TmpDisk, that keeps every job pending: set IgnoreDisk.
//   - Preemptible is ignored: Slurm has no portable way to ask for it.
//     Accelerators other than "gpu" are refused; a GPU model is not sent
//     (GRES type names are site-specific).
//   - Memory is what Slurm enforces, if it enforces anything: without
//     cgroups a job may use more than it asked for.
//   - A job neither squeue nor sacct lists is "unknown": it stays issued and
//     not running, and is never reported. The leader's missing-job rescue
//     must deal with it. This happens when accounting is off (or sacct
//     fails) and the job finished more than MinJobAge ago, e.g. while the
//     leader was down.
//   - A non-COMPLETED job never reports exit code 0: Slurm records 0:0 for
//     jobs it cancelled or timed out, so such jobs report 255
//     (batchsystem.ExitUnavailable). A job ended by a signal reports
//     128+signal.
//   - If squeue keeps failing (controller down), states stay as they were
//     and the failures are logged; nothing is reported failed. The leader's
//     over-long-job rescue is the backstop.
//   - Jobs submitted by a leader that crashed are not found automatically:
//     the leader must record BackingID for each job and call Adopt after a
//     restart. Shutdown cancels only the jobs this value issued or adopted.
package slurm
