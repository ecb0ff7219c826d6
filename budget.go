package spool

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// budget is the hard limit on chunk memory shared by all buffers of a
// Manager. It is a weighted semaphore whose weight is the budget in bytes;
// a buffer holds one unit of weight for every byte of chunk capacity it
// keeps in memory.
//
// budget never waits for memory (only, for a moment, for budget.gate,
// held for one call into the semaphore). semaphore.Weighted has two
// properties that rule out
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
	sem *semaphore.Weighted // of weight maxBudget
	// gate serializes the calls into sem (semTry, semRelease), so that
	// sem's own mutex, which every write that takes or gives back memory
	// takes, is never contended: a goroutine that found it held parked at
	// once and, woken, waited for a CPU behind every other writer (13 of
	// the 50 slowest writes of an uploads run, in one trace of three).
	// gate tries before it waits (spinMutex); spins is its tries.
	gate     spinMutex
	spins    int
	size     atomic.Int64 // the budget
	withheld atomic.Int64 // weight of sem the budget itself holds
	owed     atomic.Int64 // weight a shrink takes from the next releases
	resize   sync.Mutex   // serializes resizes
	inUse    atomic.Int64
	peak     atomic.Int64 // highest inUse so far
	// half, if set, is called once, when inUse first reaches half the
	// size (the spill arena's prepare); halfDone is set then.
	half     func()
	halfDone atomic.Bool
}

// maxBudget is the weight of a budget's semaphore: the largest budget.
const maxBudget = math.MaxInt64

func newBudget(size int64) *budget {
	b := &budget{sem: semaphore.NewWeighted(maxBudget), spins: spinsFor()}
	b.size.Store(size)
	b.withheld.Store(maxBudget - size)
	b.semTry(maxBudget - size) // nobody else holds any weight yet
	return b
}

// tryAcquire takes n bytes of the budget if they are free right now, and
// reports whether it did. It never waits for memory.
func (b *budget) tryAcquire(n int64) bool {
	if n <= 0 {
		return true
	}
	if n > b.size.Load() || !b.semTry(n) {
		return false
	}
	u := b.inUse.Add(n)
	raise(&b.peak, u)
	if b.half != nil && !b.halfDone.Load() && 2*u >= b.size.Load() && b.halfDone.CompareAndSwap(false, true) {
		b.half()
	}
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
		b.semRelease(n)
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
		b.semRelease(d)
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
		for !b.semTry(k) {
			if k == 1 {
				return false
			}
			k /= 2
		}
		if paid := b.pay(k); paid < k {
			b.semRelease(k - paid) // a release paid the rest meanwhile
		}
	}
}

// semTry is b.sem.TryAcquire(n), through b.gate.
func (b *budget) semTry(n int64) bool {
	b.gate.lock(b.spins)
	ok := b.sem.TryAcquire(n)
	b.gate.Unlock()
	return ok
}

// semRelease is b.sem.Release(n), through b.gate. (Release panics if
// more is released than is held: the gate must not stay locked then.)
func (b *budget) semRelease(n int64) {
	b.gate.lock(b.spins)
	defer b.gate.Unlock()
	b.sem.Release(n)
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
//
// The limit can change (Manager.SetDiskBudget). Buffers made by
// Manager.NewBufferContext wait for room instead of failing (wait): they
// queue, and each is granted the room it asked for as a credit of its
// own, which its next allocations spend before they charge anything
// (reserve). Waiters whose buffers already hold data on disk are served
// first, then the others, each in the order they came: a buffer part way
// through its data finishes (and, closed, gives its space back) before
// new ones start taking space. While anyone waits, nobody else takes
// room: reserve fails as if the budget were spent, so that a waiter is
// not starved by a stream of allocations that do not wait (as with
// semaphore.Weighted). Close wakes the waiters with ErrClosed.
//
// Waiters that hold disk while they wait for more could wait for each
// other for ever: when every buffer holding data on disk is waiting
// (holders counts them, spill.addLive) and the next waiter's room is not
// there, nothing but a waiter could free any; the last holder to come is
// then refused (ErrDiskBudget, as if it did not wait), so that its owner
// can give its space up, and the others go on waiting.
type diskBudget struct {
	limit atomic.Int64 // 0: no limit
	inUse atomic.Int64

	mu      sync.Mutex    // guards waiters and closed; a leaf (lock.go)
	waiters []*diskWaiter // in the order they came
	nwait   atomic.Int32  // len(waiters), read without mu
	closed  bool
	holders atomic.Int64 // spills holding data (spill.addLive)

	waitNanos atomic.Int64 // total time spent waiting, for Stats
}

// A diskWaiter is a writer waiting for n bytes of disk budget.
type diskWaiter struct {
	n       int64
	holds   *atomic.Bool  // its buffer holds data on disk (store.holdsDisk)
	ready   chan struct{} // closed when granted, refused, or the budget closes
	granted bool          // guarded by diskBudget.mu
	refused bool          // guarded by diskBudget.mu: a deadlock was broken
	tooBig  bool          // guarded by diskBudget.mu: n is past a lowered limit
}

// reserve takes n bytes: first from *credit (if credit is not nil), room
// a wait granted the caller, then from the budget. It returns an error
// wrapping ErrDiskBudget, and takes nothing, if they would take the bytes
// in use past the limit or if writers are waiting for room.
func (d *diskBudget) reserve(n int64, credit *int64) error {
	if n <= 0 {
		return nil
	}
	var fromCredit int64
	if credit != nil {
		fromCredit = min(*credit, n)
	}
	if rest := n - fromCredit; rest > 0 {
		if w := d.nwait.Load(); w > 0 {
			return fmt.Errorf("%w: %d writers are waiting for room", ErrDiskBudget, w)
		}
		if !d.take(rest) {
			return fmt.Errorf("%w: %d bytes in use of %d, %d more needed", ErrDiskBudget, d.inUse.Load(), d.limit.Load(), rest)
		}
	}
	if fromCredit > 0 {
		*credit -= fromCredit
	}
	return nil
}

// take adds n bytes to those in use if they fit the limit, and reports
// whether it did.
func (d *diskBudget) take(n int64) bool {
	for {
		cur, lim := d.inUse.Load(), d.limit.Load()
		if lim > 0 && cur+n > lim || cur > math.MaxInt64-n {
			return false
		}
		if d.inUse.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

// release gives back n bytes taken by reserve or granted by wait, and
// grants waiters what now fits.
func (d *diskBudget) release(n int64) {
	if n > 0 {
		d.inUse.Add(-n)
		if d.nwait.Load() > 0 {
			d.mu.Lock()
			d.serve()
			d.mu.Unlock()
		}
	}
}

// recheck serves the waiters, if there are any, after the holders of disk
// changed: a deadlock that was not there when they came may be there now.
func (d *diskBudget) recheck() {
	if d.nwait.Load() > 0 {
		d.mu.Lock()
		d.serve()
		d.mu.Unlock()
	}
}

// wait waits, while ctx allows, until n bytes of the budget can be
// granted to the caller, in its turn, and takes them: the caller spends
// them through reserve's credit and gives back what it does not spend
// with release. holds is the caller's store.holdsDisk. It returns an
// error wrapping ErrDiskBudget if n is more than the limit (no wait could
// end) or if it was refused to end a deadlock, ErrClosed if the Manager
// is closed meanwhile, and ctx's error if ctx ends first.
func (d *diskBudget) wait(ctx context.Context, n int64, holds *atomic.Bool) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return ErrClosed
	}
	if lim := d.limit.Load(); lim > 0 && n > lim {
		d.mu.Unlock()
		return fmt.Errorf("%w: %d bytes wanted, more than the disk budget of %d", ErrDiskBudget, n, lim)
	}
	if len(d.waiters) == 0 && d.take(n) {
		d.mu.Unlock()
		return nil
	}
	w := &diskWaiter{n: n, holds: holds, ready: make(chan struct{})}
	d.waiters = append(d.waiters, w)
	d.nwait.Add(1)
	d.serve() // room may have come meanwhile; or the waiters may be deadlocked now
	d.mu.Unlock()
	start := time.Now()
	select {
	case <-w.ready:
	case <-ctx.Done():
	}
	d.waitNanos.Add(int64(time.Since(start)))
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case w.granted:
		return nil // granted even if ctx ended meanwhile: the caller spends it
	case w.refused:
		return fmt.Errorf("%w: every buffer holding disk is waiting for more", ErrDiskBudget)
	case w.tooBig:
		return fmt.Errorf("%w: %d bytes wanted, more than the disk budget of %d (lowered meanwhile)", ErrDiskBudget, n, d.limit.Load())
	case d.closed:
		return ErrClosed
	}
	// ctx ended: leave the queue, and let those behind pass if this
	// waiter was what held them up.
	if i := slices.Index(d.waiters, w); i >= 0 {
		d.waiters = slices.Delete(d.waiters, i, i+1)
		d.nwait.Add(-1)
	}
	d.serve()
	return ctx.Err()
}

// serve grants the waiters, in their turn, as long as what they asked for
// fits; when it does not, and every holder of disk is waiting, it refuses
// the last holder to come. d.mu is held.
func (d *diskBudget) serve() {
	for len(d.waiters) > 0 {
		i := d.next()
		w := d.waiters[i]
		if !d.take(w.n) {
			d.breakDeadlock()
			return
		}
		w.granted = true
		d.drop(i)
	}
}

// next returns the index of the waiter to serve next: the first whose
// buffer holds data on disk, or else the first. d.mu is held, and there
// is a waiter.
func (d *diskBudget) next() int {
	for i, w := range d.waiters {
		if w.holds.Load() {
			return i
		}
	}
	return 0
}

// breakDeadlock refuses the last waiter holding disk to come if every
// holder of disk is waiting. d.mu is held.
func (d *diskBudget) breakDeadlock() {
	waiting, last := int64(0), -1
	for i, w := range d.waiters {
		if w.holds.Load() {
			waiting++
			last = i
		}
	}
	if last < 0 || waiting < d.holders.Load() {
		return // a holder that does not wait may yet give space back
	}
	d.waiters[last].refused = true
	d.drop(last)
}

// drop removes waiter i from the queue and wakes it. d.mu is held.
func (d *diskBudget) drop(i int) {
	close(d.waiters[i].ready)
	d.waiters = slices.Delete(d.waiters, i, i+1)
	d.nwait.Add(-1)
}

// setLimit changes the limit to n (0: none), refuses the waiters that ask
// for more than n, and grants waiters what now fits. Bytes already in use
// above a lower limit stay; no more are taken until they fall below it.
func (d *diskBudget) setLimit(n int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.limit.Store(n)
	// A waiter that asked for more than the new limit would wait for ever,
	// and hold up those behind it: it is refused.
	for i := 0; n > 0 && i < len(d.waiters); {
		if w := d.waiters[i]; w.n > n {
			w.tooBig = true
			d.drop(i)
			continue
		}
		i++
	}
	d.serve()
}

// close wakes every waiter with ErrClosed; later waits fail at once.
func (d *diskBudget) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	for _, w := range d.waiters {
		close(w.ready)
	}
	d.waiters = nil
	d.nwait.Store(0)
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
// Shrinking also trims the free lists of memory kept for reuse, and a
// shrink of 1 MiB or more ends with debug.FreeOSMemory (a garbage
// collection, then the heap's free pages returned to the system), so that
// the process's resident memory follows the budget down: SetMemoryBudget
// may then take as long as a garbage collection of the whole heap. The promoter (LeastFrequentlyUsed) and read
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
	// Every byte a rollover frees pays what is owed. A search passes over
	// the buffers written to since it began (their place in the policy's
	// order changed), and buffers being written hold most of the memory
	// under load: search again as long as searches make progress.
	var events []SpillEvent
	done := func() bool { return b.owing() == 0 }
	for owed := b.owing(); owed > 0; {
		ev, _ := m.freeMemory(done, nil, math.Inf(1), true, false)
		events = append(events, ev...)
		now := b.owing()
		if now >= owed {
			break // no progress: the rest is busy, or the disk refuses
		}
		owed = now
	}
	m.mem.trim(n - b.used())
	owed := b.owing()
	b.resize.Unlock()
	m.deliver(events)
	if old-n >= freeOSMin {
		// Give the memory back to the system now: the garbage collector
		// would otherwise keep it in the heap until the heap grows again,
		// and a budget shrinks because the process must shrink.
		debug.FreeOSMemory()
	}
	if owed > 0 {
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

// freeOSMin is the least shrink of the memory budget after which
// SetMemoryBudget returns memory to the system at once.
const freeOSMin = 1 << 20

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

// SetDiskBudget changes the disk budget (Options.DiskBudget) to n bytes;
// 0 means no limit. It must not be negative (ErrInvalidOptions).
//
// Growing takes effect at once, and buffers waiting for room
// (NewBufferContext) get it, in the order they came. Shrinking below
// DiskInUse first gives back to the file system the freed space the
// spill files still hold; spilled data stays where it is, but no more
// disk is taken until DiskInUse falls below n, as buffers are closed,
// truncated or promoted: writes that need disk meanwhile fail with
// ErrDiskBudget, or wait (NewBufferContext), and rollovers fail, leaving
// the data in memory. SetDiskBudget may be called concurrently with any
// other method.
func (m *Manager) SetDiskBudget(n int64) error {
	if !m.valid() {
		return ErrInvalid
	}
	defer runtime.KeepAlive(m)
	if n < 0 {
		return fmt.Errorf("%w: SetDiskBudget: %d is negative", ErrInvalidOptions, n)
	}
	if m.isClosed() {
		return ErrClosed
	}
	m.disk.setLimit(n)
	if n > 0 && m.disk.used() > n {
		m.arena.reclaim()
	}
	return nil
}
