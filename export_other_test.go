//go:build !linux

package spool

import (
	"errors"
	"os"
)

func allocatedBytes(f *os.File) (int64, error) {
	return 0, errors.New("allocated bytes: only on Linux")
}
