package spool

import "sync/atomic"

// frequency counts accesses to buffers for the LeastFrequentlyUsed policy:
// exact per-buffer counters that age, so that what was hot an hour ago
// does not stay in memory forever.
//
// Each buffer has one atomic word: the epoch of its last update in the top
// 16 bits and its count in the low 48. The Manager's epoch advances every
// agingPeriod accesses; a count last updated k epochs ago is worth
// count>>k. Aging is thus lazy: no sweep over all buffers, and an update is
// one compare-and-swap.
type frequency struct {
	epoch    atomic.Uint64
	accesses atomic.Uint64
}

// agingPeriod is the number of accesses, across all buffers of a Manager,
// after which every count halves.
const agingPeriod = 1 << 16

const countBits = 48

// hit records one access to the buffer whose counter word is w.
func (f *frequency) hit(w *atomic.Uint64) {
	if f.accesses.Add(1)%agingPeriod == 0 {
		f.epoch.Add(1)
	}
	e := f.epoch.Load()
	for {
		old := w.Load()
		c := decay(old, e)
		if c < 1<<countBits-1 {
			c++
		}
		if w.CompareAndSwap(old, e<<countBits|c) {
			return
		}
	}
}

// count returns the aged count in w.
func (f *frequency) count(w *atomic.Uint64) uint64 {
	return decay(w.Load(), f.epoch.Load())
}

// decay returns the count in word w as of epoch e.
func decay(w, e uint64) uint64 {
	c := w & (1<<countBits - 1)
	age := (e - w>>countBits) & (1<<16 - 1)
	if age >= countBits {
		return 0
	}
	return c >> age
}

// density is what a buffer's memory is worth under LeastFrequentlyUsed:
// accesses per byte. A large buffer read rarely is worth less than a
// small one read often.
func density(count uint64, bytes int64) float64 {
	if bytes <= 0 {
		bytes = 1
	}
	return float64(count) / float64(bytes)
}
