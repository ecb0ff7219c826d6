//go:build !unix

package main

import "errors"

// setFDLimit is not available here: the limits are unknown.
func setFDLimit(uint64) (soft, hard uint64, err error) {
	return 0, 0, errors.New("no RLIMIT_NOFILE on this system")
}

// raiseFDLimit is not available here: the limits are unknown.
func raiseFDLimit() (soft, hard uint64, err error) { return setFDLimit(0) }
