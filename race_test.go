//go:build race

package spool_test

// raceEnabled: the race detector is on. Under it sync.Pool drops a share
// of what is put in it on purpose, so allocation counts are not checked.
const raceEnabled = true
