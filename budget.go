package spool

import (
	"fmt"
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
// inUse mirrors the semaphore's held weight for Stats. It is raised after a
// successful TryAcquire and lowered before Release, so at every instant
// 0 <= inUse <= held weight <= size.
type budget struct {
	sem   *semaphore.Weighted
	size  int64
	inUse atomic.Int64
	peak  atomic.Int64 // highest inUse so far
}

func newBudget(size int64) *budget {
	return &budget{sem: semaphore.NewWeighted(size), size: size}
}

// tryAcquire takes n bytes of the budget if they are free right now, and
// reports whether it did. It never blocks.
func (b *budget) tryAcquire(n int64) bool {
	if n <= 0 {
		return true
	}
	if n > b.size || !b.sem.TryAcquire(n) {
		return false
	}
	raise(&b.peak, b.inUse.Add(n))
	return true
}

// release gives back n bytes taken by tryAcquire.
func (b *budget) release(n int64) {
	if n <= 0 {
		return
	}
	b.inUse.Add(-n)
	b.sem.Release(n)
}

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
