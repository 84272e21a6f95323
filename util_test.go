package gaffer_test

import (
	"fmt"
	"os"
)

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

// fmtSscan reads the number of a job ID such as "j12".
func fmtSscan(jobID string, n *int) (int, error) { return fmt.Sscanf(jobID, "j%d", n) }
