// Package scaler decides how many worker nodes of each type a workflow needs
// and asks a Provisioner to add or remove them. It is a Go rebuild of the
// estimation part of Toil's ClusterScaler (src/toil/provisioners/clusterScaler.py).
//
// One pass of the scaler (ClusterScaler.Step) does, in order:
//
//  1. learn runtimes from the jobs that completed since the previous pass
//     (a running mean per job kind, see RuntimeModel);
//  2. turn every issued job into a Shape (its requirements plus the learnt
//     runtime) and bin-pack the shapes onto the node types with Toil's
//     time-sliced first-fit-decreasing algorithm (BinPack), after reducing
//     each node type by the memory and disk a node loses to its operating
//     system (ReserveOverhead);
//  3. smooth the counts with the inertia factor, add compensation for
//     preemptible nodes the provisioner could not deliver, clamp to each
//     type's minimum and maximum (Estimator);
//  4. plan the changes against the provisioner's list of nodes (planScale,
//     a pure function) and apply them: add nodes, or drain nodes and
//     terminate those that are idle.
//
// Decisions are pure functions of a snapshot and every rejection carries a
// reason: a job that fits no node type becomes a Rejection naming the
// constraints of every node type, and a node that was not terminated is
// listed in the Report with why.
//
// Caveats, bluntly:
//
//   - The estimate is only as good as the runtime model. A kind never seen
//     is assumed to take the mean of all completed jobs, or
//     Config.DefaultRuntime before any job completed. A workflow whose first
//     jobs are long will be under-provisioned until some of them finish.
//   - The scaler sizes the cluster for every issued job, running or queued,
//     using the mean runtime of the job's kind and not its remaining time
//     (as Toil does). Jobs waiting on predecessors are invisible to it.
//   - Accelerators are not part of a Shape (nor of Toil's): a job asking for
//     a GPU is packed by cores, memory and disk only.
//   - Scale-in relies on a Drainer to stop new jobs landing on a node chosen
//     for removal. Without one, a job can be placed on a node between the
//     scaler's check that it is idle and its termination.
//   - Nodes present when the ClusterScaler is created are static: they are
//     counted but never terminated, as in Toil.
//   - Node types with identical shapes (after overhead) are
//     indistinguishable to the packer: the first one in Toil's order gets
//     every job.
//   - Prices are reported, never optimised: the packer picks the smallest
//     node type that fits, as Toil does.
package scaler
