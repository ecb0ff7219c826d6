//go:build !unix

package main

import "errors"

// raiseFDLimit is not available here: the limits are unknown.
func raiseFDLimit() (soft, hard uint64, err error) {
	return 0, 0, errors.New("no RLIMIT_NOFILE on this system")
}
