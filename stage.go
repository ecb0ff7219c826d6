package spool

import (
	"fmt"
	"io"
	"math"
	"time"
)

// Stages: the memory that ReadFrom and WriteTo move data through.
//
// ReadFrom calls r.Read and WriteTo calls w.Write with no lock held (user
// code runs under no spool lock: lock.go), so neither can hand the
// buffer's own slots to that code, which another goroutine may free,
// move or write meanwhile. Each call in progress holds a stage instead: a
// slice of the Manager's memory allocator, charged to the budget like a
// slot, that it reuses for every piece. A server with 10,000 slow uploads
// in io.Copy thus holds 10,000 stages inside its budget, not 10,000
// scratch slices beside it.
//
// ReadFrom's stage starts small (minStage) and doubles, while the budget
// has room, each time a Read fills it, up to a whole chunk: a slow source
// that returns a few KiB at a time keeps a small stage, a fast one gets
// whole chunks. A whole chunk that a Read filled at the end of a buffer in
// memory is adopted as the buffer's next slot, without a copy (store.adopt).
// WriteTo's stage is a chunk for a buffer with data on disk, whose blocks
// are read and checked whole, taken as a write would take it; and
// otherwise the largest that the budget's free part can give.
//
// When the budget cannot give even minStage (ReadFrom rolls other buffers
// over for it, as a write would), the call moves data through a spare: a
// slice of minStage bytes from a pool of the Manager, outside the budget.
// That is the one memory spool holds outside its budget per call in
// progress, and only when the budget is entirely taken (doc.go).
//
// A WriteTo of a buffer with data on disk that cannot have a chunk of
// budget first borrows one of the Manager's lent chunks, outside the
// budget: at most lentPerCPU per CPU (GOMAXPROCS when the Manager was
// made) are lent at once, each for one call, and a call that finds none
// free goes on as above. Through a smaller stage, each block would be read
// and checked again for every piece of it: in the bench's slow scenario
// (10,000 uploads into a 16 MiB budget, each read back with WriteTo while
// the others fill the budget), the read-back read 17 times the bytes
// uploaded (23.8 GB of reads for 1.4 GB).

// minStage is the size of a first stage and of a spare.
const minStage = 1 << 10

// lentPerCPU is the chunks a Manager lends at once per CPU.
const lentPerCPU = 2

// A stage is the slice a ReadFrom or WriteTo call moves data through.
type stage struct {
	m       *Manager
	buf     *[]byte
	charged bool // buf is budget memory, a class of m.mem
	lent    bool // buf is a chunk lent outside the budget; neither: a spare
}

// newReadStage returns ReadFrom's first stage, for a read into b: minStage
// bytes of budget, rolling other buffers over if the budget has none free,
// or a spare. It holds no lock.
func (b *store) newReadStage() stage {
	if st, ok := b.takeStage(minStage); ok {
		return st
	}
	return stage{m: b.m, buf: b.m.spare()}
}

// takeStage returns a stage of size bytes of budget, rolling other buffers
// than b over if the budget has none free, and reports whether it got one.
// It holds no lock.
func (b *store) takeStage(size int) (stage, bool) {
	m := b.m
	if m.budget.tryAcquire(int64(size)) {
		return stage{m: m, buf: m.mem.get(size), charged: true}, true
	}
	limit := math.Inf(1)
	if m.freq != nil {
		limit = density(m.freq.count(&b.freq), b.mem.Load()+int64(size))
	}
	start := time.Now()
	ev, ok := m.makeRoom(int64(size), b, limit, true, false)
	m.waitNanos.Add(int64(time.Since(start)))
	m.deliver(ev)
	if !ok {
		return stage{}, false
	}
	return stage{m: m, buf: m.mem.get(size), charged: true}, true
}

// newWriteStage returns WriteTo's stage for b: the largest power of two
// from a chunk down to minStage that the budget's free part can give, or a
// spare. For a buffer with data on disk it first takes a whole chunk, if
// need be by rolling other buffers over: a block on disk is read and
// checked whole, and a smaller stage would read and check it again for
// every piece (at 10,000 buffers, a read-back through 1 KiB spares made 36
// reads of each block).
func (b *store) newWriteStage() stage {
	m := b.m
	b.mu.RLock()
	spilled := b.file != nil
	b.mu.RUnlock()
	if spilled {
		if st, ok := b.takeStage(m.mem.chunkSize()); ok {
			return st
		}
		if st, ok := m.lend(); ok {
			return st
		}
	}
	for size := m.mem.chunkSize(); size >= minStage; size /= 2 {
		if m.budget.tryAcquire(int64(size)) {
			return stage{m: m, buf: m.mem.get(size), charged: true}
		}
	}
	return stage{m: m, buf: m.spare()}
}

// lend returns a stage of a chunk lent outside the budget, and reports
// whether one was free: at most m.maxLent are lent at once.
func (m *Manager) lend() (stage, bool) {
	if m.lent.Add(1) > m.maxLent {
		m.lent.Add(-1)
		return stage{}, false
	}
	return stage{m: m, buf: m.lends.Get().(*[]byte), lent: true}, true
}

// grow replaces the stage by one twice as large, up to a chunk, or a spare
// by a stage of the same size, if the budget has that memory free. The old
// stage's bytes are not kept. ReadFrom's stages are never lent.
func (s *stage) grow() {
	size := len(*s.buf)
	if s.charged {
		size *= 2
	}
	if size > s.m.mem.chunkSize() {
		return
	}
	if !s.m.budget.tryAcquire(int64(size)) {
		return
	}
	s.release()
	s.buf, s.charged = s.m.mem.get(size), true
}

// renew gives the stage a new slice of size bytes, the size of the slice
// a buffer adopted, which now holds it and its share of the budget. The
// caller passes the size: the adopted header belongs to the buffer, which
// may give it back (a Close) and so let memory reuse it at once. If the
// budget has no room, it falls back to a spare.
func (s *stage) renew(size int) {
	if s.m.budget.tryAcquire(int64(size)) {
		s.buf = s.m.mem.get(size)
		return
	}
	s.buf, s.charged = s.m.spare(), false
}

// release gives the stage's slice back, and its memory to the budget.
func (s *stage) release() {
	switch {
	case s.charged:
		n := int64(len(*s.buf))
		s.m.mem.put(s.buf)
		s.m.budget.release(n)
	case s.lent:
		s.m.lends.Put(s.buf)
		s.m.lent.Add(-1)
	default:
		s.m.spares.Put(s.buf)
	}
	s.buf = nil
}

// spare returns a slice of minStage bytes outside the budget.
func (m *Manager) spare() *[]byte { return m.spares.Get().(*[]byte) }

func newSpare() any {
	b := make([]byte, minStage)
	return &b
}

// ReadFrom implements Buffer.ReadFrom.
func (b *store) ReadFrom(r io.Reader) (n int64, err error) {
	b.mu.RLock()
	closed := b.closed
	b.mu.RUnlock()
	if closed {
		return 0, ErrClosed
	}
	st := b.newReadStage()
	defer func() { st.release() }()
	for {
		p := *st.buf
		k, rerr := r.Read(p)
		if k < 0 || k > len(p) {
			return n, invalidCount(k, len(p))
		}
		if k > 0 {
			if k == len(p) && st.charged && b.adopt(st.buf) {
				// The buffer holds the stage's slice, and its header, now.
				n += int64(k)
				st.renew(k)
			} else {
				nw, werr := b.writeWait(p[:k])
				n += int64(nw)
				if werr != nil {
					return n, werr
				}
				if k == len(p) {
					st.grow() // a fast source: larger pieces
				}
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// invalidCount returns ReadFrom's error for a Read that returned k for n
// bytes. It is a call of its own, so that ReadFrom's frame, under every
// write it makes, does not hold the formatting's arguments (goroutine
// stacks: doc.go).
//
//go:noinline
func invalidCount(k, n int) error {
	return fmt.Errorf("%w: Read returned %d for %d bytes", ErrInvalidCount, k, n)
}

// adopt makes c, a whole chunk of budget memory that a Read filled, the
// next slot of a buffer in memory whose offset is at its end on a slot
// boundary, as a Write of its bytes would, but without copying them. It
// reports whether it did; if so, the buffer holds c and the memory it is
// charged for.
func (b *store) adopt(c *[]byte) bool {
	cs := b.m.cs
	if int64(len(*c)) != cs {
		return false
	}
	b.lock()
	defer b.unlock()
	off := b.off
	if b.closed || b.file != nil || off != b.size || off%cs != 0 || off+cs > b.m.memLimit.Load() || off+cs < off {
		return false
	}
	i := off / cs
	if b.resident(i) {
		return false
	}
	b.touch(true)
	b.version++
	b.dropWindow()
	b.growTable(off + cs)
	b.chunks[i] = c
	b.addMem(cs)
	b.size = off + cs
	b.off = b.size
	return true
}
