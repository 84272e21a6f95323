// Package jobstore holds a workflow's durable state: its jobs, their inputs
// and results, small shared files, and the root's return value.
//
// The Store interface is what gaffer's leader uses; Bolt is its default
// implementation, one bbolt file per workflow. Files that jobs write and
// read (Files) live in a directory beside it, not in the database.
//
// Caveats, bluntly:
//
//   - One writer. The leader is the only process that opens a workflow's
//     store; workers never do. bbolt takes a file lock, so a second leader on
//     the same file waits for BoltOptions.LockTimeout and then fails with
//     ErrLocked.
//   - Local disk only. bbolt relies on mmap and flock, which network file
//     systems do not give reliably. Keep the store file on the leader's
//     local disk; only the work directory (job folders, Files) needs to be
//     shared with compute nodes.
//   - Transactions are closures. Update commits when its function returns
//     nil and rolls back otherwise; nothing read inside a transaction may be
//     kept after it (values are copied out for you).
//   - Durable by default. Each Update ends with an fsync. The leader groups
//     many job events into one Update, so this costs one fsync per batch,
//     not per job. BoltOptions.NoSync trades durability for speed and is for
//     tests only.
//   - Values are small. Job inputs and results are stored in the database;
//     big data belongs in Files.
package jobstore
