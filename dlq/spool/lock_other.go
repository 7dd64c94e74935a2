//go:build !unix

package spool

import (
	"fmt"
	"os"
	"path/filepath"
)

// lockDir creates dir/LOCK; without flock, exclusion between processes
// is not enforced on this platform.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("kprod: spool: lock %s: %w", dir, err)
	}
	return f, nil
}

func unlockDir(f *os.File) error { return f.Close() }
