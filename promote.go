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
type promoter struct {
	m    *Manager
	ch   chan *store
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once // closes done
	// calling is set while the promoter goroutine runs user code
	// (OnPromote, OnSpill, the Logger), which may call Manager.Close.
	calling atomic.Bool
}

func newPromoter(m *Manager) *promoter {
	p := &promoter{m: m, ch: make(chan *store, 64), done: make(chan struct{})}
	p.wg.Go(p.run)
	return p
}

// offer queues s for promotion, unless it is queued already or the queue
// is full. It never blocks.
func (p *promoter) offer(s *store) {
	if p == nil || !s.offered.CompareAndSwap(false, true) {
		return
	}
	select {
	case p.ch <- s:
	default:
		s.offered.Store(false)
	}
}

func (p *promoter) run() {
	for {
		select {
		case <-p.done:
			return
		case s := <-p.ch:
			// A select picks at random among the cases ready: once done
			// is closed, the queue must not be served any longer (stop,
			// which may not wait for this goroutine, counts on it).
			select {
			case <-p.done:
				return
			default:
			}
			p.m.promote(s)
			s.offered.Store(false)
		}
	}
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

// user runs f, user code, on the promoter goroutine.
func (p *promoter) user(f func()) {
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
	ok := !s.closed && s.file != nil && s.mem.Load() == 0 && s.size > 0 && s.size <= m.memLimit.Load()
	size, version := s.size, s.version
	s.mu.RUnlock()
	if !ok {
		return
	}
	need := m.memFor(size)
	score := density(m.freq.count(&s.freq), need)
	if !m.adm.admit(s.id, need) {
		m.promoteRejected.Add(1)
		return
	}
	var ev []SpillEvent // of the buffers rolled over to make room
	if !m.budget.tryAcquire(need) {
		// Only buffers clearly colder than s make room for it: without
		// the margin, aging noise near the cut-off would swap buffers in
		// and out for nothing.
		var got bool
		ev, got = m.makeRoom(need, nil, score/promoteMargin, false)
		if !got {
			m.promoteNoRoom.Add(1)
			m.adm.forget(s.id)
			m.promoter.user(func() { m.deliver(ev) })
			return
		}
	}
	if !m.swapIn(s, size, version, need) {
		m.promoter.user(func() { m.deliver(ev) })
		return
	}
	m.promotions.Add(1)
	m.promotedBytes.Add(size)
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

// swapIn loads the size bytes of spilled buffer s into need bytes of
// chunks, which the caller has taken from the budget, and swaps them in if
// s is unchanged since version and its lock is free at that instant. It
// reports whether it did; s is then locked for writing, and the caller
// unlocks it. Otherwise the chunks and their memory are given back.
func (m *Manager) swapIn(s *store, size int64, version uint64, need int64) bool {
	chunks := make([]*[]byte, (size+m.cs-1)/m.cs)
	discard := func() {
		for _, c := range chunks {
			if c != nil {
				m.mem.put(c)
			}
		}
		m.budget.release(need)
	}
	// Load with the lock held for reading: readers go on meanwhile.
	s.mu.RLock()
	if s.closed || s.file == nil || s.version != version || s.mem.Load() != 0 {
		s.mu.RUnlock()
		discard()
		return false
	}
	for i := range chunks {
		start := int64(i) * m.cs
		n := min(m.cs, size-start)
		c := m.mem.get(m.mem.classFor(int(n)))
		chunks[i] = c
		if _, err := s.readFile((*c)[:n], start); err != nil {
			s.mu.RUnlock()
			discard()
			return false
		}
	}
	s.mu.RUnlock()
	// Swap the chunks in, if nobody changed the buffer meanwhile and the
	// lock is free this instant.
	if !s.mu.TryLock() {
		discard()
		return false
	}
	if s.closed || s.file == nil || s.version != version || s.mem.Load() != 0 {
		discard()
		// s.pending is empty: s's operations deliver their events before
		// they release its lock, and swapIn recorded none.
		s.mu.Unlock()
		return false
	}
	s.dropWindow()
	s.chunks = chunks
	s.addMem(need)
	// The data is in memory now: its extents go back to the arena.
	s.closeFile()
	return true
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
