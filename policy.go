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

	// LeastFrequentlyUsed rolls over first the buffer whose memory buys
	// the fewest accesses: the lowest density, accesses (reads, and runs
	// of writes) per byte held, counted exactly per buffer and halved
	// every 65,536 accesses so that old popularity fades. A large buffer
	// read rarely goes before a small hot one. A write only rolls over
	// buffers no denser than its own, so a stream of cold uploads cannot
	// flush the hot set. Hot spilled buffers come back into memory
	// (promotion; see Options.DisablePromotion) when ristretto's TinyLFU
	// admits them and the budget has room, or can make room by rolling
	// over colder buffers.
	LeastFrequentlyUsed
)

// String returns the policy's name, as in the constant.
func (p Policy) String() string {
	switch p {
	case LargestFirst:
		return "LargestFirst"
	case LeastRecentlyUsed:
		return "LeastRecentlyUsed"
	case LeastFrequentlyUsed:
		return "LeastFrequentlyUsed"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

func (p Policy) valid() bool {
	return p == LargestFirst || p == LeastRecentlyUsed || p == LeastFrequentlyUsed
}

// candidate is a snapshot of one buffer taken for a spill decision. The
// numbers may be stale by the time the buffer is locked; they only order
// the attempts.
type candidate struct {
	b       *store
	mem     int64   // chunk bytes the buffer held
	lastUse uint64  // Manager clock at its last access
	density float64 // LeastFrequentlyUsed: accesses per byte held
	cached  bool    // experiment.RistrettoVictims: ristretto holds it
}

// order sorts candidates so that the first should be rolled over first.
// byRistretto is experiment.RistrettoVictims.
func (p Policy) order(cs []candidate, byRistretto bool) {
	switch {
	case p == LeastFrequentlyUsed && byRistretto:
		// What ristretto does not hold first, largest first.
		slices.SortFunc(cs, func(a, b candidate) int {
			switch {
			case a.cached != b.cached:
				if b.cached {
					return -1
				}
				return 1
			case a.mem > b.mem:
				return -1
			case a.mem < b.mem:
				return 1
			}
			return 0
		})
	case p == LeastFrequentlyUsed:
		slices.SortFunc(cs, func(a, b candidate) int {
			switch {
			case a.density < b.density:
				return -1
			case a.density > b.density:
				return 1
			case a.mem > b.mem: // tie: the larger frees more
				return -1
			case a.mem < b.mem:
				return 1
			}
			return 0
		})
	case p == LeastRecentlyUsed:
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
