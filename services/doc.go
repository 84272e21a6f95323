// Package services defines what a gaffer service is and runs one through
// its life.
//
// A service is a long-running helper (a database, a key-value server, a
// licence server) that a job starts for its children and follow-ons to
// use while they run. gaffer runs each service as a job of its own, on
// the batch system, holding the resources it asked for:
//
//  1. Start brings the service up and returns what its users need, such
//     as an address. That value becomes a promise the client's
//     successors take as input; they are not issued until every service
//     of their client has started.
//  2. While it runs, a service that implements Checker is checked every
//     poll interval; an error fails it.
//  3. When the client's children and follow-ons have all finished, the
//     leader asks the service to stop, and Stop shuts it down.
//
// Caveats, stated plainly:
//
//   - A service holds a batch system slot for its whole life. Services
//     that fill the cluster while the jobs that use them wait for room
//     never end: gaffer's leader detects this "service deadlock" and ends
//     the run with an error naming the services and the jobs waiting.
//   - Start's value must be valid for whoever reads it: a service on a
//     cluster node must return an address the other nodes can reach.
//   - A service that fails after it started fails its client's subtree;
//     it is not restarted. (Before it started, it is retried like any
//     job.) Make the client a checkpoint to re-run the whole subtree.
//   - When a leader is killed and resumed, it starts its services again:
//     Start must cope with what a killed earlier instance left behind.
//
// This package does not depend on gaffer; gaffer.RegisterService turns a
// constructor of Services into a registered service type.
package services
