//go:build unix && !linux && !race

package spool

// declineHugePages does nothing: transparent huge pages are Linux's.
func declineHugePages([]byte) {}
