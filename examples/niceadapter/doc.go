// Package niceadapter is the worked example of docs/adapters.md: a
// gaffer batch system that runs each worker as a local process under
// nice(1), a few at a time, in the order they were issued.
//
// It is small on purpose, and shows what every adapter must get right:
// IDs that are never 0, one report per job that ends, no report for a
// killed job (queued or running), no process left behind by Kill or
// Shutdown, and workers that die with their leader. It passes both
// suites: batchsystem/batchsystemtest and gaffertest.
//
// It builds on Unix only (process groups, nice). On Linux and FreeBSD its
// workers get a parent-death signal; elsewhere a worker of a leader that
// is killed hard runs on (see batchsystem/local for what to do instead).
package niceadapter
