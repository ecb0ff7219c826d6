package spool

import (
	"fmt"
	"slices"
)

// Policy chooses which buffers roll over to disk when a write needs memory
// that the budget lacks. The zero Policy is LargestFirst.
//
// Whatever the policy, a buffer that another goroutine is using at that
// moment is skipped rather than waited for, and if rolling over every
// eligible buffer does not free enough memory, the writing buffer itself
// rolls over.
type Policy int

const (
	// LargestFirst rolls over the buffer holding the most memory first:
	// the fewest rollovers free the most memory.
	LargestFirst Policy = iota

	// LeastRecentlyUsed rolls over the buffer whose last read or write is
	// oldest first: buffers still being worked on stay in memory.
	LeastRecentlyUsed
)

// String returns the policy's name, as in the constant.
func (p Policy) String() string {
	switch p {
	case LargestFirst:
		return "LargestFirst"
	case LeastRecentlyUsed:
		return "LeastRecentlyUsed"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

func (p Policy) valid() bool {
	return p == LargestFirst || p == LeastRecentlyUsed
}

// candidate is a snapshot of one buffer taken for a spill decision. The
// numbers may be stale by the time the buffer is locked; they only order
// the attempts.
type candidate struct {
	b       *store
	mem     int64  // chunk bytes the buffer held
	lastUse uint64 // Manager clock at its last access
}

// order sorts candidates so that the first should be rolled over first.
func (p Policy) order(cs []candidate) {
	switch p {
	case LeastRecentlyUsed:
		slices.SortFunc(cs, func(a, b candidate) int {
			switch {
			case a.lastUse < b.lastUse:
				return -1
			case a.lastUse > b.lastUse:
				return 1
			}
			return 0
		})
	default:
		slices.SortFunc(cs, func(a, b candidate) int {
			switch {
			case a.mem > b.mem:
				return -1
			case a.mem < b.mem:
				return 1
			case a.lastUse < b.lastUse: // tie: older first
				return -1
			case a.lastUse > b.lastUse:
				return 1
			}
			return 0
		})
	}
}
