//go:build !linux || race

package spool

// mappedNow cannot tell here: known is false.
func mappedNow([]byte) (mapped, known bool) { return false, false }

func residentNow([]byte) (resident, known bool) { return false, false }
