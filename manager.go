package spool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A Manager hands out Buffers that share one memory budget. Each Buffer
// keeps its data in memory, in slices taken from the budget (whole chunks,
// and size classes for small or last pieces), until it rolls over to a
// temporary file; together, the buffers of a Manager, and the ReadFrom and
// WriteTo calls in progress on them, never hold more than
// Options.MemoryBudget bytes of such memory.
//
// When a write needs memory that the budget lacks, the Manager rolls other
// buffers over to disk, in the order of Options.Policy, skipping any buffer
// another goroutine is using at that moment; if that does not free enough,
// the writing buffer itself rolls over and the write goes to disk. No
// operation ever waits for memory.
//
// A Manager is safe for use by multiple goroutines at once. Create one
// with NewManager. A nil or zero Manager is not usable, but safe: NewBuffer
// and Close return ErrInvalid and Stats returns zero Stats. Close it to close every
// buffer it handed out and close its spill files; under the
// LeastFrequentlyUsed policy it also runs a goroutine (promotion) and
// ristretto's, which only Close stops.
type Manager struct {
	opts     Options // validated, defaults filled in
	budget   *budget
	mem      *memory
	spares   sync.Pool    // stages outside the budget (stage.go)
	lends    sync.Pool    // chunks lent to WriteTo outside the budget (stage.go)
	lent     atomic.Int32 // chunks lent now, at most maxLent
	maxLent  int32
	arena    *arena       // where spilled blocks live
	seal     *sealer      // encrypts spilled blocks; nil without EncryptSpill
	cs       int64        // chunk size
	memLimit atomic.Int64 // largest end of a write that keeps a buffer in memory (setMemLimit)

	clock  atomic.Uint64 // logical time of buffer accesses, for LRU
	nextID atomic.Uint64

	// For LeastFrequentlyUsed only (nil otherwise): access counts, and
	// ristretto's admission and the promoter goroutine unless
	// DisablePromotion.
	freq     *frequency
	adm      *admission
	promoter *promoter
	off      *offloader
	watcher  *limitWatcher // Options.MemoryLimitRefresh

	disk         diskBudget
	onDisk       atomic.Int64
	spills       atomic.Int64
	spilledBytes atomic.Int64
	evictions    atomic.Int64
	spillErrors  atomic.Int64
	leaked       atomic.Int64

	promotions      atomic.Int64
	promotedBytes   atomic.Int64
	promoteRejected atomic.Int64
	promoteNoRoom   atomic.Int64
	// Reads by where they were served from, each counter on its own so
	// that each only grows: Stats adds them up for the totals.
	readsMem      atomic.Int64
	readsDisk     atomic.Int64
	readBytesMem  atomic.Int64
	readBytesDisk atomic.Int64
	skippedBusy   atomic.Int64
	// making is the writes making room for themselves (store.making):
	// past offloadEvictionsPast of them, evictions go to the offloader.
	making        atomic.Int32
	spillNanos    atomic.Int64
	zeroCopyBytes atomic.Int64
	waitNanos     atomic.Int64

	// mu protects the following fields. See lock.go: it is a leaf lock.
	mu     sync.Mutex
	closed bool
	bufs   []*store // live buffers; bufs[s.idx] == s
	// holding is the live buffers that hold memory, in no order:
	// holding[s.holdIdx-1] == s. The victim search scans it, not bufs, so
	// its cost follows the buffers in memory, not those on disk. It lags
	// a buffer's mem for an instant (store.addMem changes mem, then takes
	// mu), while the buffer's own lock is held, so no search misses a
	// buffer it could have locked; one that has just dropped to zero is
	// skipped.
	holding []*store
	// queue holds the next victims in the policy's order, from the last
	// search of holding (nextVictim); entries go stale as buffers change,
	// and are checked when taken. batch is the array a search fills.
	queue []candidate
	batch [victimBatch]candidate
	// windows is the live buffers that have a read window (window.go),
	// in no order: windows[s.win.idx-1] == s.
	windows []*store

	nwindows atomic.Int64 // len(windows), read without mu
}

// NewManager returns a Manager configured by opts, or an error wrapping
// ErrInvalidOptions that names the first invalid field.
func NewManager(opts Options) (*Manager, error) {
	return newManager(opts, osFS{})
}

func newManager(opts Options, fs fileSystem) (*Manager, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	cs := int64(o.ChunkSize)
	bud := newBudget(o.MemoryBudget)
	mem := newMemory(o.ChunkSize, slackFor(o.MemoryBudget, o.ChunkSize))
	mem.budget = bud
	var seal *sealer
	if o.EncryptSpill {
		if seal, err = newSealer(); err != nil {
			return nil, fmt.Errorf("spool: EncryptSpill: %w", err)
		}
	}
	m := &Manager{
		off:    newOffloader(offloadWorkers),
		seal:   seal,
		opts:   o,
		budget: bud,
		mem:    mem,
		cs:     cs,
	}
	files := o.MaxSpillFiles
	if files == 0 {
		files = defaultSpillFiles()
	}
	m.setMemLimit(o.MemoryBudget)
	m.disk.limit.Store(o.DiskBudget)
	m.arena = newArena(o.TempDir, o.Pattern, fs, &m.disk, cs, files)
	bud.half = m.arena.prepare
	m.spares.New = newSpare
	m.lends.New = func() any { b := make([]byte, cs); return &b }
	m.maxLent = int32(lentPerCPU * runtime.GOMAXPROCS(0))
	if o.Policy == LeastFrequentlyUsed {
		m.freq = new(frequency)
		if !o.DisablePromotion {
			if m.adm, err = newAdmission(o.MemoryBudget); err != nil {
				return nil, fmt.Errorf("spool: frequency sketch: %w", err)
			}
			m.promoter = newPromoter(m)
		}
	}
	if o.MemoryLimitRefresh > 0 {
		m.watchLimit()
	}
	return m, nil
}

// valid reports whether m was made by NewManager.
func (m *Manager) valid() bool { return m != nil && m.budget != nil }

// NewBuffer returns a new, empty Buffer in memory. It takes no memory from
// the budget until data is written. It returns ErrClosed after Close.
func (m *Manager) NewBuffer() (*Buffer, error) {
	return m.newBuffer(nil)
}

// waiting is the context a buffer made by NewBufferContext waits for disk
// under, and the function that cancels it (store.Close).
type waiting struct {
	ctx  context.Context
	stop func()
}

// newBuffer returns a new Buffer, whose writes wait for disk under w if w
// is not nil. The context is set before the buffer is listed, where a
// Manager.Close may close it.
func (m *Manager) newBuffer(w *waiting) (*Buffer, error) {
	if !m.valid() {
		return nil, ErrInvalid
	}
	s := &store{m: m, id: m.nextID.Add(1)}
	if w != nil {
		s.ctx, s.stopWait = w.ctx, w.stop
	}
	s.lastUse.Store(m.clock.Add(1))
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	s.idx = len(m.bufs)
	m.bufs = append(m.bufs, s)
	m.mu.Unlock()
	return newBuffer(s), nil
}

// TempDir returns the directory the Manager creates its spill files in:
// Options.TempDir, or DefaultTempDir() if that was "". It returns "" for
// a nil or zero Manager.
func (m *Manager) TempDir() string {
	if !m.valid() {
		return ""
	}
	return m.opts.TempDir
}

// Stats returns a snapshot of the Manager's counters. It works after Close
// too, and then shows zero memory and disk in use.
func (m *Manager) Stats() Stats {
	if !m.valid() {
		return Stats{}
	}
	m.mu.Lock()
	n := len(m.bufs)
	m.mu.Unlock()
	readsMem, readsDisk := m.readsMem.Load(), m.readsDisk.Load()
	readBytesMem, readBytesDisk := m.readBytesMem.Load(), m.readBytesDisk.Load()
	return Stats{
		MemoryBudget:    m.budget.size.Load(),
		MemoryInUse:     m.budget.used(),
		PeakMemoryInUse: m.budget.peak.Load(),
		MemoryMapped:    m.mem.os.bytes.Load(),
		ReadWindows:     int(m.nwindows.Load()),
		DiskBudget:      m.disk.limit.Load(),
		DiskInUse:       m.disk.used(),
		Buffers:         n,
		BuffersOnDisk:   int(m.onDisk.Load()),
		SpillFiles:      int(m.arena.open.Load()),
		DiskLive:        m.arena.live.Load(),
		Spills:          m.spills.Load(),
		SpilledBytes:    m.spilledBytes.Load(),
		DiskWritten:     m.arena.written.Load(),
		Evictions:       m.evictions.Load(),
		SpillErrors:     m.spillErrors.Load(),
		DiskWaiters:     int(m.disk.nwait.Load()),
		DiskWaitTime:    time.Duration(m.disk.waitNanos.Load()),
		Leaked:          m.leaked.Load(),

		Promotions:          m.promotions.Load(),
		PromotedBytes:       m.promotedBytes.Load(),
		PromotionsRejected:  m.promoteRejected.Load(),
		PromotionsNoRoom:    m.promoteNoRoom.Load(),
		Reads:               readsMem + readsDisk,
		ReadsFromMemory:     readsMem,
		ReadBytes:           readBytesMem + readBytesDisk,
		ReadBytesFromMemory: readBytesMem,
		SkippedBusy:         m.skippedBusy.Load(),
		SpillTime:           time.Duration(m.spillNanos.Load()),
		ZeroCopyBytes:       m.zeroCopyBytes.Load(),
		EvictionWait:        time.Duration(m.waitNanos.Load()),
	}
}

// Close closes every live buffer of the Manager, giving back their memory
// and closing the spill arena's files, and makes later calls of NewBuffer and of
// the buffers' methods return ErrClosed. It waits for operations already in
// progress on those buffers to finish. It returns the errors of closing the
// spill files, joined, and ErrClosed if the Manager was already closed.
func (m *Manager) Close() error {
	if !m.valid() {
		return ErrInvalid
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	m.closed = true
	bufs := append([]*store(nil), m.bufs...)
	m.mu.Unlock()
	m.disk.close() // writers waiting for disk budget give up
	m.watcher.stop()

	var errs []error
	for _, b := range bufs {
		if err := b.Close(); err != nil && !errors.Is(err, ErrClosed) {
			errs = append(errs, err)
		}
	}
	// Every buffer is closed: nothing can offer a promotion or touch
	// ristretto any more, and no spill holds an extent.
	m.promoter.stop()
	m.off.close()
	m.adm.close()
	if err := m.arena.close(); err != nil {
		errs = append(errs, fmt.Errorf("spool: close spill file: %w", err))
	}
	m.mem.drop()

	return errors.Join(errs...)
}

// setHolding adds b to the list of buffers holding memory, or removes it.
func (m *Manager) setHolding(b *store, holds bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case holds && b.holdIdx == 0:
		m.holding = append(m.holding, b)
		b.holdIdx = len(m.holding)
	case !holds && b.holdIdx != 0:
		m.dropHolding(b)
	}
}

// dropHolding removes b, which is in it, from the list of buffers holding
// memory. The caller holds m.mu.
func (m *Manager) dropHolding(b *store) {
	i, last := b.holdIdx-1, len(m.holding)-1
	m.holding[i] = m.holding[last]
	m.holding[i].holdIdx = i + 1
	m.holding[last] = nil
	m.holding = m.holding[:last]
	b.holdIdx = 0
}

// unregister removes a closed buffer from the live list.
func (m *Manager) unregister(b *store) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := b.idx
	if i < 0 || i >= len(m.bufs) || m.bufs[i] != b {
		return
	}
	last := len(m.bufs) - 1
	m.bufs[i] = m.bufs[last]
	m.bufs[i].idx = i
	m.bufs[last] = nil
	m.bufs = m.bufs[:last]
	b.idx = -1
	if b.holdIdx != 0 {
		// Close gave every chunk back first, so this does not happen;
		// but a closed buffer must never stay in the victim search.
		m.dropHolding(b)
	}
}

// makeRoom rolls other buffers over to disk until need bytes of the budget
// can be taken, takes them, and reports whether it did; it returns the
// spill events of the buffers it rolled over, for the caller to deliver
// once it holds no lock. self, if not nil, is a buffer never rolled
// over: the one whose lock the caller holds, or the one a promotion makes
// room for; other buffers are only ever TryLocked (see lock.go), so a
// buffer in use elsewhere is skipped. Under LeastFrequentlyUsed only
// buffers whose density is below limit (at most limit if inclusive) are
// rolled over. If all the memory but self's cannot make need, nothing is
// rolled over: a rollover that cannot help is not made. whole is
// freeMemory's.
func (m *Manager) makeRoom(need int64, self *store, limit float64, inclusive, whole bool) ([]SpillEvent, bool) {
	if self != nil && need > m.budget.size.Load()-self.mem.Load() {
		return nil, false
	}
	done := func() bool { return m.budget.tryAcquire(need) }
	return m.freeMemory(done, self, limit, inclusive, whole)
}

// freeMemory drops read windows, then rolls buffers other than self over
// to disk, until done reports true, and reports whether it did; it
// returns the spill events of the buffers it rolled over. makeRoom
// describes self, limit and inclusive.
//
// A victim is rolled over a chunk at a time (evict), and only as far as
// done needs: its owner never waits for more than one chunk's write, and
// the writer short of memory writes no more than it needs. If whole is
// set, each victim that holds at most 1/wholeVictimShare of the budget is
// rolled over entirely before done is asked (evict): that is for
// promotions (promote.go), which no writer waits for. A victim that a
// promotion left partly in memory held memory that served no read of it
// whole, until its own promotion moved it back, rolling others over
// partly in turn (measured in the bench's cache scenario, 5 alternating
// pairs of runs: whole-blob reads from memory 95.7-95.8% with whole
// victims against 94.9-95.3% without; 4 KiB reads 94.9-95.2% against
// 94.2-95.1%).
//
// The victims come from the victim queue (nextVictim), which a search of
// the buffers holding memory refills a batch at a time (victims.go), so
// that the search allocates nothing, holds nothing per live buffer, and
// is made once per victimBatch victims rather than once per write. A
// search offers at most as many buffers as held memory when it began (a
// buffer touched meanwhile moves in the order and could otherwise come
// back again and again). It ends at the first rollover that fails on a
// limit every other victim would hit too (limitReached), and after
// maxFailedRollovers failed rollovers of any kind: a disk that fails every
// operation costs a write a few file operations, not one per buffer in
// memory.
func (m *Manager) freeMemory(done func() bool, self *store, limit float64, inclusive, whole bool) ([]SpillEvent, bool) {
	// Read windows first: dropping one costs no I/O.
	if m.nwindows.Load() > 0 && m.reclaimWindows(done) {
		return nil, true
	}
	var (
		events []SpillEvent
		failed int // rollovers that returned an error
	)
	m.mu.Lock()
	left := len(m.holding)
	m.mu.Unlock()
	var after candidate // the last candidate offered
	for ; left > 0; left-- {
		v, ok := m.nextVictim(self, limit, inclusive, &after)
		if !ok {
			break
		}
		var satisfied bool
		var err error
		if m.making.Load() > offloadEvictionsPast { // offload.go
			satisfied, err = m.off.evict(v, done, &events, whole)
		} else {
			satisfied, err = m.evict(v, done, &events, whole)
		}
		if satisfied {
			if v.mem.Load() > 0 && err == nil {
				// v still holds memory and comes first in the policy's
				// order: the next search starts with it again.
				m.requeue(v)
			}
			return events, true
		}
		if err != nil {
			failed++
		}
		if limitReached(err) || failed == maxFailedRollovers {
			return events, false
		}
	}
	// Memory may have been freed meanwhile by a Close or a Truncate.
	return events, done()
}

// evict rolls victim v over to disk a chunk at a time until done reports
// true or v holds no memory, taking v's lock (with TryLock: it is never
// the caller's) for one chunk's write at a time, so that v's owner, if it
// comes back, waits for one chunk at most, and then keeps v: evict stops
// at the first TryLock that fails. If whole is set, and v holds at most
// 1/wholeVictimShare of the budget, done is asked only once v holds no
// memory, or evict stops short of that (v busy, closed, or a failed
// rollover). It appends to *events the spill event of what it moved, if
// it took v's lock, and returns whether done reported true and the error
// of a failed rollover.
func (m *Manager) evict(v *store, done func() bool, events *[]SpillEvent, whole bool) (satisfied bool, err error) {
	var moved, size int64
	hopped, held := false, false
	// A victim that holds much of the budget is rolled over only as far
	// as needed even then: a promotion of 64 KiB would otherwise write
	// out a whole cold buffer of any size before it could go on.
	whole = whole && v.mem.Load() <= m.budget.size.Load()/wholeVictimShare
	defer func() {
		if held { // spillChunk panicked: the victim's owner must not hang
			v.mu.Unlock()
		}
	}()
	for hops := 0; ; hops++ {
		if !v.mu.TryLock() {
			if hops == 0 {
				m.skippedBusy.Add(1)
			}
			satisfied = whole && hopped && done()
			break
		}
		if v.closed || v.mem.Load() <= 0 {
			v.mu.Unlock()
			satisfied = whole && hopped && done()
			break
		}
		held = true
		var n int64
		n, err = v.spillChunk()
		moved += n
		size = v.size
		held = false
		v.mu.Unlock()
		hopped = true
		if err != nil {
			m.spillErrors.Add(1)
			satisfied = whole && done() // what it did free may do
			break
		}
		if !whole || v.mem.Load() <= 0 {
			if done() {
				satisfied = true
				break
			}
			if whole {
				break // v is on disk: the next victim
			}
		}
	}
	if moved > 0 {
		m.spills.Add(1)
		m.evictions.Add(1)
		m.spilledBytes.Add(moved)
	}
	if hopped {
		appendEvicted(events, v, size, moved, err)
	}
	return satisfied, err
}

// wholeVictimShare: evict rolls a victim over whole, when asked to, only
// if it holds at most 1/wholeVictimShare of the budget.
const wholeVictimShare = 16

// appendEvicted appends to *events the event of an eviction of v. It is a
// call of its own, given the event's fields, so that the frames of evict
// and freeMemory, which lie under the victim's writes to disk on a
// writer's goroutine, hold no SpillEvent (goroutine stacks: doc.go).
//
//go:noinline
func appendEvicted(events *[]SpillEvent, v *store, size, moved int64, err error) {
	*events = append(*events, SpillEvent{Buffer: v.id, Reason: SpillEvicted, Size: size, Moved: moved, Err: err})
}

// nextVictim returns the next buffer the policy would roll over, other
// than self and (under LeastFrequentlyUsed) with a density below limit (at
// most limit if inclusive), and reports whether there is one.
//
// It takes it from the victim queue (Manager.queue): the best candidates
// of the last search of the buffers holding memory (victims.go), in the
// policy's order. A write short of memory usually needs one victim, and at
// 10,000 buffers a search of every buffer holding memory for each such
// write was a third of spool's CPU; with the queue, a search serves
// victimBatch victims. A candidate is taken only if the numbers the order
// was made from still hold: a buffer used since (its lastUse changed), or
// that no longer holds memory, is dropped from the queue and waits for
// the next search. The queue is refilled when it runs dry, with the
// candidates that come after *after, the last one this search offered
// (unless it offered none): busy buffers a search skipped do not come back
// in it. nextVictim records the candidate it returns in *after.
func (m *Manager) nextVictim(self *store, limit float64, inclusive bool, after *candidate) (*store, bool) {
	for refills := 0; ; refills++ {
		m.mu.Lock()
		queued := len(m.queue)
		for i := 0; i < len(m.queue); {
			c := &m.queue[i]
			if c.b.mem.Load() <= 0 || c.b.lastUse.Load() != c.lastUse || c.b.holdIdx == 0 {
				m.dropQueued(i) // stale
				continue
			}
			if c.b == self {
				i++
				continue
			}
			if m.freq != nil && !(c.density < limit || (inclusive && c.density == limit)) {
				// The queue runs coldest first: no later candidate is
				// cold enough either.
				m.mu.Unlock()
				return nil, false
			}
			v := c.b
			*after = *c
			after.b = nil // keep the numbers only: the entry is reused
			m.dropQueued(i)
			m.mu.Unlock()
			return v, true
		}
		m.mu.Unlock()
		// A refill that found nothing ends the search. One whose every
		// entry went stale before it could be used (readers touched them
		// all, while this goroutine was descheduled) says nothing about
		// the buffers: search again, a few times at most, rather than
		// roll the writer's own buffer over with colder ones in memory.
		// (Skipping the search when another writer refilled the queue
		// since this one looked, so that writers finding it empty at once
		// search once between them, made the uploads scenario's write
		// latency p99.9 1-10 ms in four runs of five, against 0.21-0.38
		// ms: more writers gave up and rolled their own buffer over.)
		if (refills > 0 && queued == 0) || refills == maxRefills {
			return nil, false
		}
		m.refillQueue(after)
	}
}

// maxRefills bounds the victim searches one nextVictim makes when the
// candidates of each went stale before they could be used.
const maxRefills = 4

// requeue puts v, which a victim search rolled over only in part, at the
// head of the victim queue, with its numbers as they are now.
func (m *Manager) requeue(v *store) {
	c := candidate{b: v, id: v.id, mem: v.mem.Load(), lastUse: v.lastUse.Load()}
	if m.freq != nil {
		c.density = density(m.freq.count(&v.freq), c.mem)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if v.holdIdx == 0 || c.mem <= 0 {
		return
	}
	if len(m.queue) == victimBatch {
		m.queue = m.queue[:victimBatch-1] // the last goes back to the search
	}
	m.queue = append(m.queue, candidate{})
	copy(m.queue[1:], m.queue)
	m.queue[0] = c
}

// dropQueued removes entry i of the victim queue. m.mu is held.
func (m *Manager) dropQueued(i int) {
	copy(m.queue[i:], m.queue[i+1:])
	m.queue[len(m.queue)-1] = candidate{}
	m.queue = m.queue[:len(m.queue)-1]
}

// refillQueue searches the buffers holding memory for the victimBatch the
// policy would roll over first, after *after if it is a candidate, and
// makes them the victim queue. The search runs under m.mu, into m.batch,
// and allocates nothing: with a pool of batches, the slow scenario's
// writers allocated 10 MB of them over a run, each search its own.
func (m *Manager) refillQueue(after *candidate) {
	q := victimQuery{limit: math.Inf(1), inclusive: true}
	if after.id != 0 {
		q.after = after
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cs, _, _ := m.victims(&m.batch, q)
	m.queue = append(m.queue[:0], cs...)
}

// maxFailedRollovers is the number of failed rollovers after which a
// victim search gives up. Errors that are not limits (EIO, EACCES, a
// failing device) may be peculiar to one victim's file, so a few more
// victims are tried; when all of them fail too, the disk is most likely
// failing for every buffer, and trying the rest would cost a write one
// file operation per buffer in memory, each one under that buffer's lock.
const maxFailedRollovers = 4

// limitReached reports whether err, from a rollover, is a limit that the
// next victim would most likely hit too: the Manager's spill-file or disk
// budget, or a full disk or quota. Other victims are not tried after one.
func limitReached(err error) bool {
	return err != nil && (errors.Is(err, ErrDiskBudget) ||
		errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT))
}

// deliver hands spill events to OnSpill and the Logger, and tells
// ristretto which buffers left memory. The caller holds no spool lock.
func (m *Manager) deliver(events []SpillEvent) {
	for _, e := range events {
		if e.Err == nil {
			m.adm.forget(e.Buffer)
		}
		if l := m.opts.Logger; l != nil {
			attrs := []slog.Attr{
				slog.Uint64("buffer", e.Buffer), slog.String("reason", e.Reason.String()),
				slog.Int64("size", e.Size), slog.Int64("moved", e.Moved),
			}
			if e.Err != nil {
				l.LogAttrs(context.Background(), slog.LevelWarn, "spool: rollover failed; data intact", append(attrs, slog.Any("error", e.Err))...)
			} else {
				l.LogAttrs(context.Background(), slog.LevelDebug, "spool: buffer rolled over to disk", attrs...)
			}
		}
		if f := m.opts.OnSpill; f != nil {
			f(e)
		}
	}
}

// isClosed reports whether m was closed.
func (m *Manager) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// countRead records a read of n bytes, of which fromFile came from disk.
// Reads served from memory, the hot path, cost two atomic adds.
func (m *Manager) countRead(n, fromFile int) {
	if fromFile > 0 {
		m.readsDisk.Add(1)
		m.readBytesDisk.Add(int64(fromFile))
	} else {
		m.readsMem.Add(1)
	}
	if n > fromFile {
		m.readBytesMem.Add(int64(n - fromFile))
	}
}
