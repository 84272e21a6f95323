//go:build !unix

package gaffer

import "os"

// mapShared has no shared mapping here: slots are written to the file.
func mapShared(*os.File, int) []byte { return nil }

func unmap([]byte) {}
