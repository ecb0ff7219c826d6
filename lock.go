package spool

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Lock protocol
//
// spool has the eight kinds of lock-like state numbered below (some with
// a leaf lock of their own beside them). This comment is the single
// place that says how they nest; every function that takes a lock follows
// it, and stress_test.go checks it with a watchdog that dumps all goroutine
// stacks if any operation stops making progress.
//
//  1. store.mu (sync.RWMutex), one per Buffer (a Buffer is a handle on its
//     store; see buffer.go), guards the buffer's contents, size, offset,
//     slot table and spill. Operations that change any of these
//     (Write, WriteAt, Read, Seek, Truncate, Rollover, Close, ReadByte, ...)
//     hold it for writing; ReadAt, Size and OnDisk hold it for reading, so
//     ReadAt calls run in parallel with each other.
//
//  2. store.winMu (sync.Mutex), one per Buffer, guards the buffer's read
//     window (window.go). The buffer's own operations take it while
//     holding its store.mu: reads (for reading, by ReadAt, or for writing)
//     with TryLock, reading the file directly if it is busy; changes, which
//     drop the window, with Lock while holding store.mu for writing. A write
//     short of memory in another buffer takes it with TryLock alone, to
//     take the window back (Manager.reclaimWindows). While holding it, code
//     may take Manager.mu (to list or unlist the window), take or give back
//     budget (never waiting for memory) and read the buffer's spill,
//     nothing else.
//
//  3. Manager.mu (sync.Mutex) guards the Manager's lists of live buffers,
//     of buffers holding memory and of buffers with a read window, and its
//     closed flag. It is a leaf: while holding it, code takes no other
//     spool lock (not even with TryLock), does no I/O and calls no user
//     code. The victim search
//     (victims.go) holds it for one pass over the buffers holding memory
//     per batch of candidates, reading their atomics.
//
//  4. The memory budget (budget.go) is a semaphore used only through
//     TryAcquire and Release, which never wait for weight. No code ever
//     waits for memory. Both are called through budget.gate (a spinMutex,
//     below), a leaf held for nothing but the call, so that the
//     semaphore's own mutex is never contended; a goroutine may wait a
//     moment for the gate, never for memory. budget.resize (sync.Mutex)
//     serializes SetMemoryBudget calls: it is held with no other spool
//     lock held, around TryAcquire and Release and the rollovers of a
//     shrink, which TryLock their victims as a write short of memory
//     does; the spill events of those rollovers are delivered after it is
//     released.
//
//  5. segment.mu (a spinMutex), one per segment file of the spill arena
//     (arena.go), guards that segment's frames: which extents are taken, which
//     granules are charged to the disk budget, its slack count, and the pins
//     of extents a zero-copy send is reading. It is always taken through
//     segment.lock or segment.relock, which try it for about 2 µs before they
//     wait if GOMAXPROCS > 1 (a writer parked on it waits for a CPU behind
//     every other writer once woken: see spinMutex). It is a leaf: it is taken
//     while holding a store.mu (a buffer's writes, Truncate and Close allocate
//     and free extents) or with no spool lock held (the end of a zero-copy
//     send, Manager.Close), and while holding it code takes no other lock but
//     arena.landMu (a leaf, to count a punch or cut in flight: arena.fly); the
//     disk budget is charged under it by an atomic compare-and-swap, which
//     never waits. Holds are kept short: a reclaim looks at reclaimSlice
//     frames per hold, yielding to waiters in between (segment.relock), and
//     checks again what it found before it marks; the frames array grows with
//     it released (growFrames); settle and a punch's commit pass over the
//     frames they changed only. It is held for no I/O, not even the fallocate
//     and ftruncate calls that give space back (punching out or cutting off
//     frames that have just become free, punching out slack: freed granules
//     that no extent occupies): those are decided and marked under it (frame
//     states frameSettling and frameCutting, a frame's punching bitmap,
//     segment.cut), made with it released, and committed under it again; the
//     disk budget they free is released after that, with no segment.mu held
//     (arena.land). A reclaim of the arena's slack, after an operation that
//     freed extents or when an allocation meets the disk budget (after that
//     allocation has released its segment.mu), takes the segments' locks one
//     at a time, never two at once. arena.mu only guards the creation and
//     closing of segments (a leaf too: arena.close takes each segment.mu after
//     releasing it). Reads and writes of extents need no arena lock: an extent
//     belongs to the buffer that allocated it, under its lock, until it frees
//     it, no punch touches a granule that an extent overlaps (live, read by a
//     send, or dead), and nothing is written past a cut in flight before its
//     ftruncate has returned.
//
//     An allocation may wait, holding its buffer's store.mu (and, for an
//     eviction, its victim's; for a shrink's rollovers, budget.resize too)
//     but no segment.mu, for a punch or a cut in flight: in a frame past a cut's
//     new end of file, for its ftruncate to return (cut.done); refused by
//     the disk budget, for the next punch or cut in flight to land
//     (arena.awaitLanding). Neither can deadlock: a punch or cut in flight
//     goes from its mark to its landing taking no lock but segment.mu,
//     diskBudget.mu and arena.landMu, leaves, and waiting for nothing
//     else (arena.landMu guards the count of those in flight, the count
//     of landings and the channel the next landing closes, made by its
//     first waiter, changed together, so that a refused
//     allocation that finds one in flight waits for a landing still to
//     come); and its own goroutine never waits for a landing or a cut
//     meanwhile. arena.close
//     does not wait for them: it gives back everything still charged and
//     marks the segment closed, and a commit after it gives back nothing
//     more (punches use the descriptor through os.File.SyscallConn, so
//     closing it meanwhile cannot make them punch another file). Reads,
//     writes and in-kernel copies of extents use the descriptor's number
//     directly (osFile.WriteAt): each runs under the lock of the buffer
//     whose extents it touches, and arena.close runs only once every
//     buffer is closed, so none can meet a closed descriptor.
//
//  6. diskBudget.mu (sync.Mutex) guards the queue of writers waiting for
//     disk budget (buffers made by NewBufferContext). It is a leaf: taken
//     by a release of disk budget (never while holding a segment.mu;
//     perhaps while holding a store.mu), by a change in the buffers that
//     hold data on disk (spill.addLive, holding the buffer's store.mu and
//     no segment.mu), by SetDiskBudget and Close, and by a writer (or a
//     ReserveDisk) that starts or stops waiting; while holding it code only
//     reads and updates atomics and closes channels. Charging the disk
//     budget (under a segment.mu) never takes it: a compare-and-swap, and
//     a read of the number of waiters. A writer waits for disk budget
//     holding no spool lock at all: its write gives up the buffer's lock,
//     waits, and takes it again to go on; the buffer's Close, which does
//     not wait for it, cancels the buffer's context (a child of the one
//     NewBufferContext was given) under the store.mu, which wakes it: the
//     context's own lock is a leaf. Writers that hold disk and wait
//     for more could wait for each other: diskBudget refuses one when
//     every holder of disk waits (budget.go), looking again whenever a
//     writer comes or leaves, room is freed or the holders change; a
//     ReserveDisk of a buffer that holds disk, data or room set aside,
//     does not wait; and a waiter that asks for more than a lowered limit
//     is refused. So waiters cannot deadlock with each other; one may
//     still wait, until its context ends, for room that nobody frees
//     (where the file system cannot punch holes, freed space that no
//     extent of the size it needs can reuse stays counted).
//
//  7. admission.mu (sync.RWMutex), one per LeastFrequentlyUsed Manager,
//     is held for reading around each call into ristretto's cache and for
//     writing by admission.close, so that Manager.Close never closes the
//     cache under a call in progress (a spill event delivered after Close,
//     or a promoter still finishing). It is a leaf below every other
//     lock: it may be taken while holding a store.mu or Manager.mu, and
//     while holding it code takes no spool lock and calls no user code.
//
//  8. freeList.mu (sync.Mutex), one per size class of the memory
//     allocator (memory.go), is held only to push or pop a slice of its
//     class. It is a leaf below every other lock, and code holds at most
//     one at a time: memory.put, when the slack is full, drops a slice of
//     another class under that class's lock and releases it before it
//     takes its own.
//
// Order. A goroutine blocks on at most one store.mu at a time: the lock of
// the buffer whose method it is running. While holding it, it may take the
// lock of *another* buffer only with TryLock, to move that buffer's chunks
// to disk (Manager.evict, one TryLock per chunk), and it skips that buffer
// if TryLock fails. A
// TryLock never waits, so no cycle of waiting goroutines can form, whatever
// the number of buffers and goroutines: that is the whole deadlock argument.
// Manager.mu may be taken while holding a store.mu (to register, unregister,
// search for victims, or note that the buffer started or stopped holding
// memory: store.addMem), or a store.mu and its store.winMu (to list or
// unlist a read window); a store.mu or store.winMu is never taken while
// holding Manager.mu. A write short of memory takes back other buffers'
// read windows (Manager.reclaimWindows) with TryLock on their store.winMu
// only; the only blocking acquisition of a store.winMu is by a goroutine
// holding that buffer's store.mu for writing, and a holder of a store.winMu
// waits for nothing but Manager.mu, a leaf, so no cycle can form.
//
// What is done while holding store.mu. Copies between chunks and the
// caller's slice, reads and writes of the buffer's own extents in the
// spill arena, giving the space of extents it freed, and the arena's
// slack, back to the file system (with no segment.mu held during the
// system calls: segment.mu, above), and waiting for a punch or a cut in
// flight in the arena (also above). A rollover of a
// buffer by its own operation (Rollover, a write past the threshold)
// writes it to disk under its lock; an eviction by another goroutine holds
// the victim's lock for one chunk's write at a time and TryLocks it again
// for the next, so that the victim's owner, when it comes back, waits for
// one chunk at most and stops the eviction; if that write panics, the
// eviction releases the victim's lock as the panic passes.
// WriteTo's zero-copy path (copyout.go) verifies each block under the
// read lock, pins its extent, and releases the lock before the kernel
// sends the block to a socket or file, so a slow or stalled peer holds up
// no other operation. Never: a call
// into user code (io.Reader/io.Writer passed to ReadFrom/WriteTo, the OnSpill
// callback) and never a blocking wait on another buffer. ReadFrom and WriteTo
// move data through a stage of their own (stage.go) and lock the buffer
// only around each piece, so a slow network peer cannot pin a buffer's
// lock; a stage is never shared, and a stage a buffer adopts as a slot
// (store.adopt) is handed over under the buffer's lock, after the Read
// that filled it has returned.
//
// Offloaded calls (offload.go). A rollover that a buffer's own operation
// makes (store.spill), and an eviction while many writes are short of
// memory, run on a goroutine of the Manager's offloader while the caller
// waits on a channel: the worker acts for the caller, under the locks the
// caller holds (the buffer's store.mu; for an eviction, the victim's is
// taken with TryLock by the worker as by the caller), and takes no other
// lock than the caller would. The caller holds nothing the worker waits
// for, and a worker makes one call at a time, so a handoff adds no edge
// to the order above. offloader.mu, a leaf, is held only to start a
// worker or to close the offloader; a caller that finds every worker busy
// waits for one with no lock taken beyond its own, and workers wait for
// nothing but calls. Manager.Close stops the workers after every buffer
// is closed.
//
// Manager.Close sets closed under Manager.mu, takes a snapshot of the live
// buffers, releases Manager.mu, and then closes each buffer with a blocking
// Lock; it holds no other lock while doing so, so it only waits for
// operations already in progress, each of which is finite.
//
// The garbage collector's cleanup of a Buffer dropped without Close runs
// store.Close on the runtime's finalizer goroutine: one blocking Lock of that
// store, with nothing else held, exactly like a user's Close.
//
// Callbacks. A rollover records its SpillEvent in the rolled-over buffer's
// pending list; an evicting goroutine moves the victim's events to its own
// buffer before releasing the victim. unlock delivers pending events to
// Options.OnSpill after releasing the lock, so OnSpill runs with no spool
// lock held and may call any method.

// lock takes b.mu for writing, for an operation that may move the offset
// or change the content: what it reads, if anything, it records in
// lastRead after lock.
func (b *store) lock() {
	b.mu.Lock()
	b.lastRead = 0
}

// unlock releases b.mu (held for writing) and then delivers the spill
// events recorded while it was held.
func (b *store) unlock() {
	ev := b.pending
	b.pending = nil
	b.mu.Unlock()
	b.m.deliver(ev)
}

// A spinMutex is a sync.Mutex for locks that hundreds of writers take for
// a moment each (segment.mu, budget.gate): lock tries it for a while
// before it waits, because waiting is what made the tail of the writes.
// sync.Mutex parks a goroutine that finds it held at once when other
// goroutines are ready to run (it spins only when its CPU has nothing
// else to do), and a goroutine parked, once woken, waits for a CPU behind
// all those others: milliseconds with hundreds of writers on a few CPUs.
// Worse, a waiter that has waited over a millisecond turns the mutex over
// to direct handoff: the lock then belongs to a goroutine that is not
// running, and every writer that comes queues behind it, each in turn
// waiting for a CPU. Its holders hold it for no I/O and, but for a few
// passes over many items (which release it now and then: relock), for
// well under a microsecond, so trying for about 2 µs nearly always gets
// it. Measured in the bench's uploads scenario (README): p99.9 medians of
// 1.67-1.97× the temporary file's against 1.84-2.37× without the tries,
// for segment.mu, in seven sets of 8 alternating runs.
//
// The zero value is an unlocked mutex; Lock, Unlock and TryLock are
// sync.Mutex's.
type spinMutex struct {
	sync.Mutex
	// contending counts the goroutines in lock that did not get the
	// mutex at once: relock yields its CPU while there are any.
	contending atomic.Int32
}

// lockSpins is how many times spinMutex.lock tries the mutex before it
// waits: about 2 µs on the project's machine.
const lockSpins = 2000

// spinsFor returns how many tries a spinMutex.lock should make: lockSpins,
// or none if GOMAXPROCS is 1, since the holder cannot be running
// meanwhile. Its callers ask once, when they are made (runtime.GOMAXPROCS
// takes a lock of the scheduler's): if GOMAXPROCS changes later (the
// runtime follows a container's CPU limit), they keep the first answer,
// which costs at most some useless tries, or tries not made.
func spinsFor() int {
	if runtime.GOMAXPROCS(0) > 1 {
		return lockSpins
	}
	return 0
}

// lock takes the mutex, trying it up to spins times before it waits.
func (m *spinMutex) lock(spins int) {
	if m.TryLock() {
		return
	}
	m.contending.Add(1)
	for range spins {
		if m.TryLock() {
			m.contending.Add(-1)
			return
		}
	}
	m.Lock()
	m.contending.Add(-1)
}

// relock releases the mutex and takes it again (lock), between the slices
// of a long pass. If goroutines are waiting for it, it yields its CPU in
// between: Unlock wakes a parked waiter to run next on this CPU, where it
// would find the mutex taken again at once, and get it only once the pass
// ends, or once it has waited long enough for the mutex to turn to
// handoff (measured in review, a reclaim's pass over 2,000 frames of a
// segment: its waiters waited 1.6-1.9 ms on average without the yield,
// 23-38 µs with it).
func (m *spinMutex) relock(spins int) {
	m.Unlock()
	if m.contending.Load() > 0 {
		runtime.Gosched()
	}
	m.lock(spins)
}
