package spool

import (
	"log/slog"
	"sync"
	"sync/atomic"
)

// promoter brings hot spilled buffers back into memory, on its own
// goroutine, so that promotion never makes a reader wait: reads offer
// candidates without blocking (offer drops them when the queue is full),
// the data is loaded while holding the buffer's lock only for reading, and
// the write lock is only tried, for the instant it takes to swap the
// loaded chunks in. It runs for Managers with the LeastFrequentlyUsed
// policy unless Options.DisablePromotion is set, and stops in
// Manager.Close.
//
// The goroutine serves the candidates it holds in the order they were
// offered, unless more than promoteQueue wait: then it serves the densest
// first (pick). A promotion loads the buffer's data on disk and rolls
// others over, so when reads come much faster than promotions (small reads
// of a cache), the order decides which buffers reach memory soon: served
// first come first, the hot buffers waited behind cold ones read once, or
// were dropped. Below that backlog, the order of the reads is kept: the
// counts that density is computed from move with timing, and serving by
// them when there is no need made the outcome of a run vary more and fall
// on average (measured: README, the cache scenario).
type promoter struct {
	m    *Manager
	ch   chan *store
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once // closes done
	// calling is set while the promoter goroutine runs user code
	// (OnPromote, OnSpill, the Logger), which may call Manager.Close.
	calling atomic.Bool

	// pending holds the candidates taken from ch and not yet served, at
	// most maxPending; only the promoter goroutine uses it.
	pending []*store
}

// promoteQueue is the capacity of the promoter's channel, and maxPending
// the candidates the goroutine holds once it has taken them from the
// channel. An offer is dropped when the channel is full (the goroutine
// takes what it holds each time it picks); a full pending keeps the
// densest (take). A candidate dropped is offered again by its next read
// from disk.
const (
	promoteQueue = 64
	maxPending   = 256
)

func newPromoter(m *Manager) *promoter {
	p := &promoter{m: m, ch: make(chan *store, promoteQueue), done: make(chan struct{})}
	p.wg.Go(p.run)
	return p
}

// offer queues s, a buffer of size bytes whose lock the caller holds,
// for promotion, unless it is queued already or the queue is full. It
// never blocks.
func (p *promoter) offer(s *store, size int64) {
	if p == nil || !s.offered.CompareAndSwap(false, true) {
		return
	}
	s.offerSize = size // read by the promoter after it receives s
	select {
	case p.ch <- s:
	default:
		s.offered.Store(false)
	}
}

func (p *promoter) run() {
	for {
		if len(p.pending) == 0 {
			select {
			case <-p.done:
				return
			case s := <-p.ch:
				p.pending = append(p.pending, s)
			}
		}
		p.take()
		// A select picks at random among the cases ready: once done is
		// closed, the queue must not be served any longer (stop, which
		// may not wait for this goroutine, counts on it).
		select {
		case <-p.done:
			p.pending = nil // no closed buffer stays reachable
			return
		default:
		}
		s := p.pick()
		p.m.promote(s)
		s.offered.Store(false)
	}
}

// take moves the candidates queued in ch to the end of pending, which is
// in the order they were offered. Once pending holds maxPending, each
// candidate taken replaces the least dense one held, if it is denser; the
// one left out is dropped (its next read from disk offers it again). The
// densities of a full pending are computed once per take.
func (p *promoter) take() {
	var ws []float64 // densities of pending, once it is full
	least := 0
	for {
		select {
		case s := <-p.ch:
			if len(p.pending) < maxPending {
				p.pending = append(p.pending, s)
				continue
			}
			if ws == nil {
				ws = make([]float64, len(p.pending))
				for i, c := range p.pending {
					ws[i] = p.worth(c)
				}
				least = lowest(ws)
			}
			if w := p.worth(s); w > ws[least] {
				p.pending[least].offered.Store(false)
				copy(p.pending[least:], p.pending[least+1:])
				copy(ws[least:], ws[least+1:])
				p.pending[len(p.pending)-1], ws[len(ws)-1] = s, w
				least = lowest(ws)
				continue
			}
			s.offered.Store(false)
		default:
			return
		}
	}
}

// lowest returns the index of the least of ws, which is not empty.
func lowest(ws []float64) int {
	i := 0
	for j, w := range ws {
		if w < ws[i] {
			i = j
		}
	}
	return i
}

// pick removes a candidate from pending and returns it: the first offered,
// or the densest if more than promoteQueue wait.
func (p *promoter) pick() *store {
	i := 0
	if len(p.pending) > promoteQueue {
		best := p.worth(p.pending[0])
		for j, s := range p.pending[1:] {
			if w := p.worth(s); w > best {
				i, best = j+1, w
			}
		}
	}
	s := p.pending[i]
	copy(p.pending[i:], p.pending[i+1:])
	last := len(p.pending) - 1
	p.pending[last] = nil
	p.pending = p.pending[:last]
	return s
}

// worth is candidate s's density now: its aged count over the memory its
// size when offered would take. promote checks everything again.
func (p *promoter) worth(s *store) float64 {
	return density(p.m.freq.count(&s.freq), p.m.memFor(s.offerSize))
}

// stop ends the promoter goroutine and waits for it, unless that
// goroutine is running user code: then stop may have been called from
// that very code (an OnPromote that closes the Manager), and waiting would
// wait forever. The goroutine holds no budget while it runs user code
// (promote), and exits when the user code returns, doing no more work: by
// the time stop runs, every buffer is closed, and the calls it may still
// make into ristretto do nothing once admission.close has run.
func (p *promoter) stop() {
	if p == nil {
		return
	}
	p.once.Do(func() { close(p.done) })
	if !p.calling.Load() {
		p.wg.Wait()
	}
}

// user runs f, user code, on the promoter goroutine (or, for tests, on
// any goroutine if p is nil).
func (p *promoter) user(f func()) {
	if p == nil {
		f()
		return
	}
	p.calling.Store(true)
	defer p.calling.Store(false)
	f()
}

// promoteMargin is how much denser than its victims a promoted buffer must
// be. Measured in the bench's cache scenario (Zipf s = 1.1, 200,000 reads,
// runs alternating on the same day): reads from memory, whole-blob and 4
// KiB reads, medians of 4 to 11 runs: 1.25: 94.6% and 93.5%; 1.1: 95.3%
// and 94.1%; 1.05: 95.1% and 94.0%; 1.0: 94.8% and 93.7%, with the most
// rollovers during the reads (swaps back and forth near the cut-off).
const promoteMargin = 1.1

// promote moves spilled buffer s back into memory if ristretto admits it
// and the budget has room, or can be made room for by rolling over
// buffers colder than s (lower density). It holds no lock on entry.
//
// The memory it reserves is either swapped into s or given back before it
// runs any user code (the spill events of the buffers it rolled over,
// OnPromote): stop does not wait for the promoter while it runs user code,
// so budget held across that code would outlive Manager.Close.
func (m *Manager) promote(s *store) {
	s.mu.RLock()
	ok := !s.closed && s.file != nil && s.size > 0 && s.size <= m.memLimit.Load()
	size, version, held := s.size, s.version, s.mem.Load()
	var need int64 // the memory of the slots on disk
	if ok {
		need = m.missing(s, size)
	}
	s.mu.RUnlock()
	if !ok || need == 0 {
		return
	}
	// What s is worth is counted over the memory it takes whole, like a
	// victim's over the memory it holds: the memory already held serves
	// reads too.
	score := density(m.freq.count(&s.freq), held+need)
	if !m.adm.admit(s.id, held+need) {
		m.promoteRejected.Add(1)
		return
	}
	var ev []SpillEvent // of the buffers rolled over to make room
	if !m.budget.tryAcquire(need) {
		// Only buffers clearly colder than s make room for it: without
		// the margin, aging noise near the cut-off would swap buffers in
		// and out for nothing.
		var got bool
		// s itself is never a victim: partly resident, it holds memory.
		ev, got = m.makeRoom(need, s, score/promoteMargin, false, true)
		if !got {
			m.promoteNoRoom.Add(1)
			m.adm.forget(s.id)
			m.promoter.user(func() { m.deliver(ev) })
			return
		}
	}
	loaded, ok := m.swapIn(s, size, version, held, need)
	if !ok {
		m.promoter.user(func() { m.deliver(ev) })
		return
	}
	m.promotions.Add(1)
	m.promotedBytes.Add(loaded)
	m.promoter.user(func() {
		s.unlock() // delivers s's pending spill events, if any
		m.deliver(ev)
		if l := m.opts.Logger; l != nil {
			l.Debug("spool: buffer promoted into memory", slog.Uint64("buffer", s.id), slog.Int64("size", size))
		}
		if f := m.opts.OnPromote; f != nil {
			f(PromoteEvent{Buffer: s.id, Size: size})
		}
	})
}

// missing returns the memory that the slots of spilled buffer s, of size
// bytes, that are not held in memory would take in memory. s.mu is held,
// for reading at least.
func (m *Manager) missing(s *store, size int64) int64 {
	var need int64
	for i := int64(0); i*m.cs < size; i++ {
		if !s.resident(i) {
			need += int64(m.mem.classFor(int(min(m.cs, size-i*m.cs))))
		}
	}
	return need
}

// swapIn loads the slots of spilled buffer s (of size bytes, held bytes of
// memory in the slots it holds) that are on disk into need bytes of
// chunks, which the caller has taken from the budget, and swaps them in if
// s is unchanged since version (and held) and its lock is free at that
// instant: s is then wholly in memory and its spill is closed. It reports
// whether it did, and the bytes it loaded; s is then locked for writing,
// and the caller unlocks it. Otherwise the chunks and their memory are
// given back.
//
// A buffer partly in memory, as an eviction that stopped after a few
// chunks leaves it, is promoted like one wholly on disk: otherwise, held
// at a density counted over the little memory it holds, it would neither
// be rolled over nor come back, and every whole read of it would go to
// disk for good.
func (m *Manager) swapIn(s *store, size int64, version uint64, held, need int64) (loaded int64, ok bool) {
	var chunks []*[]byte
	discard := func() {
		for _, c := range chunks {
			if c != nil {
				m.mem.put(c)
			}
		}
		m.budget.release(need)
	}
	// The memory s holds changes only with its slots (an eviction, a
	// write, a Truncate), and a write or Truncate changes version too.
	unchanged := func() bool {
		return !s.closed && s.file != nil && s.version == version && s.mem.Load() == held
	}
	// Load with the lock held for reading: readers go on meanwhile.
	s.mu.RLock()
	if !unchanged() {
		s.mu.RUnlock()
		discard()
		return 0, false
	}
	// The new table is as long as the old one, if that is longer: a
	// resident slot past the size (there is none: Truncate gives them
	// back) would be kept, never lost from the count of held memory.
	chunks = make([]*[]byte, max((size+m.cs-1)/m.cs, int64(len(s.chunks))))
	for i := range chunks {
		start := int64(i) * m.cs
		if s.resident(int64(i)) || start >= size {
			continue
		}
		n := min(m.cs, size-start)
		c := m.mem.get(m.mem.classFor(int(n)))
		chunks[i] = c
		if _, err := s.readFile((*c)[:n], start); err != nil {
			s.mu.RUnlock()
			discard()
			return 0, false
		}
		loaded += n
	}
	s.mu.RUnlock()
	// Swap the chunks in, if nobody changed the buffer meanwhile and the
	// lock is free this instant.
	if !s.mu.TryLock() {
		discard()
		return 0, false
	}
	if !unchanged() {
		discard()
		// s.pending is empty: s's operations deliver their events before
		// they release its lock, and swapIn recorded none.
		s.mu.Unlock()
		return 0, false
	}
	for i, c := range chunks {
		if c == nil {
			chunks[i] = s.chunks[i] // held in memory already
		}
	}
	s.dropWindow()
	s.chunks = chunks
	s.addMem(need)
	// The data is in memory now: its extents go back to the arena.
	s.closeFile()
	return loaded, true
}

// memFor returns the memory a buffer of size bytes written densely holds:
// full slots, and the class of its last piece.
func (m *Manager) memFor(size int64) int64 {
	if size <= 0 {
		return 0
	}
	full := (size - 1) / m.cs
	return full*m.cs + int64(m.mem.classFor(int(size-full*m.cs)))
}
