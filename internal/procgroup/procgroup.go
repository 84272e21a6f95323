// Package procgroup starts worker processes that die with their leader
// and take what they started with them: each is the leader of a process
// group of its own, which Kill kills whole, and on Linux and FreeBSD it
// gets a parent-death signal. Elsewhere (macOS, other Unix systems) a
// worker that sees its leader go (its input pipe at end of file) calls
// Exit, which kills its own group. Windows has no process groups: Kill
// and Exit end the one process.
//
// Package local has its own copy of the start attributes, with the
// orphan handling that one-process-per-job workers need.
package procgroup
