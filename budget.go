package spool

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/semaphore"
)

// budget is the hard limit on chunk memory shared by all buffers of a
// Manager. It is a weighted semaphore whose weight is the budget in bytes;
// a buffer holds one unit of weight for every byte of chunk capacity it
// keeps in memory.
//
// budget never blocks. semaphore.Weighted has two properties that rule out
// its blocking Acquire here: TryAcquire fails whenever any Acquire is
// queued (even if the free weight would satisfy it), and an Acquire of more
// than the semaphore's size waits until its context ends. spool therefore
// only ever calls TryAcquire; when memory is short the caller frees some by
// rolling other buffers over to disk (Manager.makeRoom) and tries again, or
// writes to disk itself. Because nobody queues, TryAcquire succeeds exactly
// when enough weight is free.
//
// The budget can be resized (Manager.SetMemoryBudget). The semaphore's
// weight is fixed, maxBudget, and the budget itself holds the part of it
// that is not the budget's size (withheld): growing gives weight back to
// the semaphore, shrinking takes it. A shrink takes at once the weight
// that is free; what buffers hold beyond the new size is owed, and every
// release pays what is owed before it gives weight back to the
// semaphore, so that the buffers can never again take more than the new
// size. While anything is owed, MemoryInUse may still be above the size
// (it only falls); SetMemoryBudget rolls buffers over until nothing is.
// Always: withheld + owed == maxBudget − size, and the weight the buffers
// may hold is maxBudget − withheld.
//
// inUse mirrors the weight the buffers hold, for Stats. It is raised after
// a successful TryAcquire and lowered before Release, so at every instant
// 0 <= inUse <= the weight they hold <= size + owed.
type budget struct {
	sem      *semaphore.Weighted // of weight maxBudget
	size     atomic.Int64        // the budget
	withheld atomic.Int64        // weight of sem the budget itself holds
	owed     atomic.Int64        // weight a shrink takes from the next releases
	resize   sync.Mutex          // serializes resizes
	inUse    atomic.Int64
	peak     atomic.Int64 // highest inUse so far
}

// maxBudget is the weight of a budget's semaphore: the largest budget.
const maxBudget = math.MaxInt64

func newBudget(size int64) *budget {
	b := &budget{sem: semaphore.NewWeighted(maxBudget)}
	b.size.Store(size)
	b.withheld.Store(maxBudget - size)
	b.sem.TryAcquire(maxBudget - size) // nobody else holds any weight yet
	return b
}

// tryAcquire takes n bytes of the budget if they are free right now, and
// reports whether it did. It never blocks.
func (b *budget) tryAcquire(n int64) bool {
	if n <= 0 {
		return true
	}
	if n > b.size.Load() || !b.sem.TryAcquire(n) {
		return false
	}
	raise(&b.peak, b.inUse.Add(n))
	return true
}

// release gives back n bytes taken by tryAcquire, paying first what a
// shrink owes.
func (b *budget) release(n int64) {
	if n <= 0 {
		return
	}
	b.inUse.Add(-n)
	if b.owed.Load() > 0 {
		n -= b.pay(n)
	}
	if n > 0 {
		b.sem.Release(n)
	}
}

// pay moves up to n bytes of weight the caller holds to the budget's own,
// against what is owed, and returns how much it moved.
func (b *budget) pay(n int64) int64 {
	for {
		o := b.owed.Load()
		k := min(o, n)
		if k <= 0 {
			return 0
		}
		if b.owed.CompareAndSwap(o, o-k) {
			b.withheld.Add(k)
			return k
		}
	}
}

// grow raises the size to n (> size): it cancels what is owed first, then
// gives the rest of the difference to the semaphore. b.resize is held.
func (b *budget) grow(n int64) {
	d := n - b.size.Load()
	b.size.Store(n)
	for d > 0 {
		o := b.owed.Load()
		k := min(o, d)
		if k == 0 {
			break
		}
		if b.owed.CompareAndSwap(o, o-k) {
			d -= k
		}
	}
	if d > 0 {
		b.withheld.Add(-d)
		b.sem.Release(d)
	}
}

// shrink lowers the size to n (< size): from now on the buffers cannot
// take more than n. The difference is owed; collect takes what is free of
// it. b.resize is held.
func (b *budget) shrink(n int64) {
	d := b.size.Load() - n
	b.size.Store(n)
	b.owed.Add(d)
	b.collect()
}

// collect takes the weight that is free in the semaphore, up to what is
// owed (in pieces, halving the size it tries down to a byte: the
// semaphore does not say how much is free), and reports whether nothing
// is owed any more. Once it has run, the buffers can take no more memory
// until they give back all that is owed: releases pay it first.
func (b *budget) collect() bool {
	for {
		o := b.owed.Load()
		if o == 0 {
			return true
		}
		k := o
		for !b.sem.TryAcquire(k) {
			if k == 1 {
				return false
			}
			k /= 2
		}
		if paid := b.pay(k); paid < k {
			b.sem.Release(k - paid) // a release paid the rest meanwhile
		}
	}
}

// owing reports the bytes a shrink still owes.
func (b *budget) owing() int64 { return b.owed.Load() }

// used reports the bytes currently held.
func (b *budget) used() int64 { return b.inUse.Load() }

// diskBudget counts the disk space the spill arena's files may hold,
// against Options.DiskBudget: granules of the files (arena.go). The arena
// charges a granule when it allocates the first extent that overlaps it,
// before anything is written there, and gives it back when it punches the
// granule out of its file or cuts it off the end, not when the extents
// over it are freed: until then the file may still hold it. Holes take no
// extent, and what a write that fails took is punched out at once.
type diskBudget struct {
	limit int64 // 0: no limit
	inUse atomic.Int64
}

// reserve takes n bytes, or returns an error wrapping ErrDiskBudget if
// they would take the bytes in use past the limit.
func (d *diskBudget) reserve(n int64) error {
	if n <= 0 {
		return nil
	}
	for {
		cur := d.inUse.Load()
		if d.limit > 0 && cur+n > d.limit {
			return fmt.Errorf("%w: %d bytes in use of %d, %d more needed", ErrDiskBudget, cur, d.limit, n)
		}
		if d.inUse.CompareAndSwap(cur, cur+n) {
			return nil
		}
	}
}

// release gives back n bytes taken by reserve.
func (d *diskBudget) release(n int64) {
	if n > 0 {
		d.inUse.Add(-n)
	}
}

// used reports the bytes in use.
func (d *diskBudget) used() int64 { return d.inUse.Load() }

// raise makes v at least n.
func raise(v *atomic.Int64, n int64) {
	for {
		cur := v.Load()
		if n <= cur || v.CompareAndSwap(cur, n) {
			return
		}
	}
}

// SetMemoryBudget changes the memory budget to n bytes, which must be at
// least the Manager's ChunkSize (ErrInvalidOptions otherwise).
//
// Growing takes effect at once. Shrinking does too for what buffers take
// from then on: no buffer can take memory while MemoryInUse is at or
// above n. What they hold beyond n is then rolled over to disk, by the
// Manager's Policy, a chunk at a time, as for a write short of memory
// (read windows are dropped first); SetMemoryBudget returns once
// MemoryInUse is at most n, and from then on the budget is as hard as
// one set in Options. If it cannot get there, because the buffers holding
// the memory are in use (a buffer being read or written is never rolled
// over by another goroutine) or because the disk refuses the rollovers,
// it returns an error wrapping ErrOverBudget (and the disk's error, if
// any): the budget is n all the same, and memory given back by buffers
// (a Close, a Truncate, a rollover) goes to paying off the difference
// before anything else can take it, so MemoryInUse only falls until it is
// at most n. Call it again to roll more over.
//
// Shrinking also trims the free lists of memory kept for reuse, so that
// the heap can shrink too. The promoter (LeastFrequentlyUsed) and read
// windows keep to the new budget like any buffer. SetMemoryBudget may be
// called concurrently with any other method; calls are serialized.
func (m *Manager) SetMemoryBudget(n int64) error {
	if !m.valid() {
		return ErrInvalid
	}
	defer runtime.KeepAlive(m)
	if n < m.cs || n > maxBudget {
		return fmt.Errorf("%w: SetMemoryBudget: %d is not from ChunkSize %d to %d", ErrInvalidOptions, n, m.cs, int64(maxBudget))
	}
	if m.isClosed() {
		return ErrClosed
	}
	b := m.budget
	b.resize.Lock()
	old := b.size.Load()
	switch {
	case n > old:
		b.grow(n)
		m.setMemLimit(n)
	case n < old:
		// The new limit first, so that writes that no longer fit go to
		// disk rather than take memory now being given back.
		m.setMemLimit(n)
		b.shrink(n)
	}
	m.mem.resize(n)
	ok := b.owing() == 0
	var events []SpillEvent
	if !ok {
		// Every byte a rollover frees pays what is owed.
		done := func() bool { return b.owing() == 0 }
		events, ok = m.freeMemory(done, nil, math.Inf(1), true)
	}
	m.mem.trim(n - b.used())
	owed := b.owing()
	b.resize.Unlock()
	m.deliver(events)
	if !ok && owed > 0 {
		var err error
		for _, e := range events {
			if e.Err != nil {
				err = e.Err
			}
		}
		return errors.Join(fmt.Errorf("%w: %d bytes in use, %d over the new budget of %d, could not be rolled over now",
			ErrOverBudget, b.used(), owed, n), err)
	}
	return nil
}

// setMemLimit sets the largest end of a write that keeps a buffer in
// memory for a budget of size bytes: whole chunks and the largest class
// that fits what is left, or BufferThreshold if smaller.
func (m *Manager) setMemLimit(size int64) {
	limit := size / m.cs * m.cs
	if rem := int(size - limit); rem >= minClass {
		limit += int64(m.mem.classBelow(rem))
	}
	if t := m.opts.BufferThreshold; t > 0 && t < limit {
		limit = t
	}
	m.memLimit.Store(limit)
}
