//go:build !unix

package gaffer

import (
	"fmt"
	"os"
)

// folderWorkerMain: pilots reuse worker processes only on Unix
// (batchsystem/pilot's canReuse), where a worker can send each job's
// output to its own log.
func folderWorkerMain() int {
	fmt.Fprintln(os.Stderr, "gaffer folder worker: only on Unix")
	return 2
}
