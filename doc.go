// Package gaffer runs workflow DAGs: jobs with children, follow-ons and
// joins, whose results are promises that later jobs take as input. It is
// the engine of Toil rebuilt as a Go library.
//
// # Using it
//
// Register job types at package level with Register or MustRegister, build
// a root job with JobType.New, and run it with a Leader:
//
//	leader, err := gaffer.NewLeader(gaffer.Config{Store: "wf.db"})
//	...
//	value, err := gaffer.Run(ctx, leader, Root.New(input))
//
// Inside a job, the JobContext adds children and follow-ons, logs to the
// job's log, and gives a scratch directory and the workflow's file store.
//
// # Caveats, bluntly
//
//   - Job type names are the contract. A store records names, not
//     functions; rename a type and stored jobs of it fail with
//     ErrUnknownJobType.
//   - A job type that makes jobs of its own type must be registered in an
//     init function: a package variable cannot refer to itself.
//   - Inputs and results are JSON and live in the store. Keep them small;
//     put data in the file store (JobContext.Files) and pass FileIDs.
//   - Promises are resolved when a job is issued. A job whose input
//     promises the result of a job that does not run before it fails with
//     ErrUnfulfilledPromise; order them with a child or follow-on edge.
//   - Results are kept until the workflow ends (Toil deletes each promise
//     file once read); a workflow with huge results grows its store.
//   - Jobs should be idempotent. A job running when its leader died is run
//     again by the next leader unless its worker finished and left its
//     result in its folder. In-process jobs always run again.
//   - In-process jobs share the leader's process: a job that never returns
//     holds its resources, and Kill can only cancel its context.
//   - Pool workers (local.Workers, `-mode subprocess` in the examples)
//     run many jobs one after another in one process: a job that leaks
//     memory, goroutines or global state leaves them to the next job on
//     that worker until it is recycled (PoolOptions.JobsPerWorker,
//     MaxRSS). A job that crashes its worker loses only itself, and is
//     retried. Pool workers die with their leader (a parent-death signal
//     on Linux and FreeBSD; everywhere, the end of their input pipe), so
//     a pool job never finishes while its leader is down: the next
//     leader runs again every job that was running. Use local.Subprocess
//     (a process per job) where jobs must not share a process.
//   - Subprocess and cluster workers are this same binary started again:
//     call ServeWorker first thing in main, and keep the binary identical
//     between the leader and its workers.
//   - One leader per store. The store is a bbolt file on local disk; only
//     the work directory must be shared with the workers.
//   - The leader keeps every live job in memory, compactly, and the
//     largest single transaction decides its peak: a job that adds a
//     million children at once took the leader to 0.86-0.94 GiB of RSS in
//     docs/benchmarks.md.
//   - Services (RegisterService, AddService) hold a batch system slot for
//     their whole life. Services that fill the cluster while their users
//     wait for room are a deadlock: the run ends with a *DeadlockError
//     after Config.DeadlockWait, not before, so a deadlock costs that wait.
//   - A service does not outlive its leader: a resumed workflow starts its
//     services again, and a service's value (an address) changes.
//   - Cancelling (Leader.Cancel, RequestCancel) is for good: cancelled jobs
//     are not resumed, and their ancestors end cancelled. To pause a run
//     and resume it later, cancel Run's context instead.
//   - A checkpoint re-runs its body when its subtree fails: the body must
//     be safe to run again, and what the old subtree wrote to the file
//     store stays there.
package gaffer
