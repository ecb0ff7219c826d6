package spool

import (
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"
)

// Hooks for the external tests.

// SetPoison makes m's chunk pool overwrite every chunk given back with p, so
// tests can prove that no stale byte is ever shown.
func SetPoison(m *Manager, p byte) { m.mem.poison = p }

// Faults injects errors into a Manager's spill files: operation number
// FailAt (counted from 0 over every create, write, read, truncate and
// close) fails with Err; with Persistent, every later operation fails too;
// with Times > 1, that many operations from FailAt on fail. With Short, a
// failing write writes half of its bytes first.
type Faults struct {
	FailAt     int
	Persistent bool
	Times      int
	Short      bool
	Err        error
	// Lost makes a failing write report success without writing anything:
	// a lost write, as a file system may lose one after an error.
	Lost bool
	// Log prints every operation, numbered, with the functions that made
	// it: the way to find the FailAt of a given operation.
	Log bool
	// FailMoves makes every in-kernel copy of a block that outgrew its
	// extent (copy_file_range) fail as the fields above say, whatever
	// FailAt.
	FailMoves bool

	mu    sync.Mutex
	ops   int
	moves int
	read  int64
}

// ReadBytes reports how many bytes reads of spill files returned.
func (f *Faults) ReadBytes() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.read
}

// Moves reports how many in-kernel copies were attempted.
func (f *Faults) Moves() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.moves
}

// move counts an in-kernel copy, and reports whether it must fail.
func (f *Faults) move() bool {
	f.mu.Lock()
	f.moves++
	all := f.FailMoves
	f.mu.Unlock()
	return f.fail() || all
}

// Ops reports how many operations were attempted.
func (f *Faults) Ops() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ops
}

// fail counts one operation and reports whether it must fail.
func (f *Faults) fail() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.ops
	f.ops++
	if f.Log {
		fmt.Printf("op %d %s\n", n, string(debugStack()))
	}
	return f.FailAt >= 0 && (n == f.FailAt || (f.Persistent && n > f.FailAt) ||
		(n > f.FailAt && n < f.FailAt+f.Times))
}

// NewManagerWithFaults is NewManager with spill files that fail as f says.
func NewManagerWithFaults(opts Options, f *Faults) (*Manager, error) {
	m, err := newManager(opts, faultyFS{f})
	if err == nil {
		noPrepare(m)
	}
	return m, err
}

// noPrepare stops m creating its first spill file ahead of the first
// spill (arena.prepare): tests that count file operations from the
// first spill on.
func noPrepare(m *Manager) { m.budget.half = nil }

type faultyFS struct{ f *Faults }

func (fs faultyFS) createTemp(dir, pattern string) (spillFile, error) {
	if fs.f.fail() {
		return nil, fs.f.Err
	}
	file, err := osFS{}.createTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return faultyFile{file, fs.f}, nil
}

type faultyFile struct {
	spillFile
	f *Faults
}

func (ff faultyFile) WriteAt(p []byte, off int64) (int, error) {
	if ff.f.fail() {
		if ff.f.Lost {
			return len(p), nil // reported written, never written
		}
		if ff.f.Short && len(p) > 1 {
			n, _ := ff.spillFile.WriteAt(p[:len(p)/2], off)
			return n, ff.f.Err
		}
		return 0, ff.f.Err
	}
	return ff.spillFile.WriteAt(p, off)
}

func (ff faultyFile) ReadAt(p []byte, off int64) (int, error) {
	if ff.f.fail() {
		return 0, ff.f.Err
	}
	n, err := ff.spillFile.ReadAt(p, off)
	ff.f.mu.Lock()
	ff.f.read += int64(max(n, 0))
	ff.f.mu.Unlock()
	return n, err
}

func (ff faultyFile) Truncate(size int64) error {
	if ff.f.fail() {
		return ff.f.Err
	}
	return ff.spillFile.Truncate(size)
}

func (ff faultyFile) punch(off, n int64) error {
	if ff.f.fail() {
		return ff.f.Err
	}
	if p, ok := ff.spillFile.(puncher); ok {
		return p.punch(off, n)
	}
	return nil
}

func (ff faultyFile) copyWithin(src, dst, n int64) error {
	mv, ok := ff.spillFile.(mover)
	if !ok {
		return errors.ErrUnsupported
	}
	if ff.f.move() {
		if ff.f.Lost {
			return nil // reported copied, never copied
		}
		if ff.f.Short && n > 1 {
			mv.copyWithin(src, dst, n/2)
		}
		return ff.f.Err
	}
	return mv.copyWithin(src, dst, n)
}

func (ff faultyFile) Close() error {
	err := ff.spillFile.Close() // always release the descriptor
	if ff.f.fail() {
		return ff.f.Err
	}
	return err
}

// RawSpillFile returns the bytes under b's checksums or encryption, as they
// are in the extents of its blocks in the arena's segment files, at the
// buffer's own offsets, to tamper with; or nil if b has no spill. Offsets
// in no block's extent read and write nothing.
func RawSpillFile(b *Buffer) interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
} {
	s := b.s
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.file == nil {
		return nil
	}
	return rawSpill{s}
}

type rawSpill struct{ s *store }

// each calls f with the segment file, the file offset and the part of p
// of every block p covers that has an extent.
func (r rawSpill) each(p []byte, off int64, f func(seg spillFile, pos int64, q []byte) (int, error)) (int, error) {
	r.s.mu.RLock()
	defer r.s.mu.RUnlock()
	sp := r.s.file
	return sp.eachBlock(p, off, func(i int64, lo int, q []byte) error {
		m := sp.meta.get(i)
		if m.ext == 0 || lo >= int(m.n) {
			return nil
		}
		q = q[:min(len(q), int(m.n)-lo)]
		_, err := f(sp.a.segment(m.ext.seg()).f, m.ext.offset()+int64(lo), q)
		return err
	})
}

// ReadAt reads what the extents hold at off; it returns io.EOF past the
// last block.
func (r rawSpill) ReadAt(p []byte, off int64) (int, error) {
	r.s.mu.RLock()
	end := r.s.fileSize
	r.s.mu.RUnlock()
	if off >= end {
		return 0, io.EOF
	}
	if rem := end - off; int64(len(p)) > rem {
		n, err := r.ReadAt(p[:rem], off)
		if err == nil {
			err = io.EOF
		}
		return n, err
	}
	return r.each(p, off, func(f spillFile, pos int64, q []byte) (int, error) { return f.ReadAt(q, pos) })
}

// ArenaBytes returns the whole content of every segment file of m's arena.
func ArenaBytes(m *Manager) ([]byte, error) {
	var all []byte
	for i := range m.arena.segs {
		s := m.arena.segs[i].Load()
		if s == nil {
			continue
		}
		b, err := io.ReadAll(io.NewSectionReader(s.f, 0, 1<<40))
		if err != nil {
			return nil, err
		}
		all = append(all, b...)
	}
	return all, nil
}

func (r rawSpill) WriteAt(p []byte, off int64) (int, error) {
	return r.each(p, off, func(f spillFile, pos int64, q []byte) (int, error) { return f.WriteAt(q, pos) })
}

// BlockSize returns the unit of checksums of m's spilled data: its chunk
// size.
func BlockSize(m *Manager) int64 { return m.cs }

// ForceEvict rolls over every other buffer of b's Manager that is not in
// use, as a write to b that needed the whole budget would.
func ForceEvict(b *Buffer) {
	s := b.s
	s.lock()
	defer s.unlock()
	if !s.closed {
		// All the budget but what b holds: only rolling over every other
		// buffer frees that much, so every one of them is tried. If that
		// worked, the budget taken is given back.
		need := s.m.budget.size.Load() - s.mem.Load()
		ev, ok := s.m.makeRoom(need, s, math.Inf(1), true, false)
		if ok {
			s.m.budget.release(need)
		}
		s.pending = append(s.pending, ev...)
	}
}

// StopPromoter stops m's promotion goroutine for good, so that a test can
// look at m while nothing moves. Call it while no operation is in
// progress.
func StopPromoter(m *Manager) {
	if m.promoter == nil {
		return
	}
	m.promoter.stop()
	m.promoter.wg.Wait() // stop does not wait while the goroutine runs user code
	m.promoter = nil
}

// ReadLocked runs f while b's lock is held for reading, as it is during a
// ReadAt.
func ReadLocked(b *Buffer, f func()) {
	b.s.mu.RLock()
	defer b.s.mu.RUnlock()
	f()
}

// DropWindow drops b's read window, if it has one, so that the next read
// goes to the spill file (a test that damages the file wants that).
func DropWindow(b *Buffer) {
	b.s.lock()
	b.s.dropWindow()
	b.s.unlock()
}

// CheckHolding returns an error unless m's list of buffers holding memory
// (the victim search's) is exactly its live buffers whose memory is not
// zero; after Close, that the list is empty. Call it while no operation
// is in progress.
func CheckHolding(m *Manager) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	in := make(map[*store]bool, len(m.holding))
	for i, b := range m.holding {
		if b.holdIdx != i+1 {
			return fmt.Errorf("buffer %d at %d of the holding list says %d", b.id, i, b.holdIdx-1)
		}
		in[b] = true
	}
	for _, b := range m.bufs {
		if holds := b.mem.Load() > 0; holds != in[b] {
			return fmt.Errorf("buffer %d holds %d bytes; in the holding list: %v", b.id, b.mem.Load(), in[b])
		}
		if !in[b] && b.holdIdx != 0 {
			return fmt.Errorf("buffer %d is not in the holding list but says it is at %d", b.id, b.holdIdx-1)
		}
		delete(in, b)
	}
	for b := range in {
		return fmt.Errorf("buffer %d (%d bytes) is in the holding list but not live", b.id, b.mem.Load())
	}
	// The read windows: listed exactly when held, by live buffers.
	if int64(len(m.windows)) != m.nwindows.Load() {
		return fmt.Errorf("%d windows listed, nwindows says %d", len(m.windows), m.nwindows.Load())
	}
	for i, b := range m.windows {
		if b.win.idx != i+1 || b.win.buf == nil {
			return fmt.Errorf("buffer %d at %d of the window list says %d, has a window: %v", b.id, i, b.win.idx-1, b.win.buf != nil)
		}
	}
	var held int64
	for _, b := range m.bufs {
		if (b.win.buf != nil) != (b.win.idx != 0) {
			return fmt.Errorf("buffer %d has a window: %v; listed at %d", b.id, b.win.buf != nil, b.win.idx-1)
		}
		held += b.mem.Load()
	}
	// With nothing in flight, the budget in use is the chunks and the
	// windows. A promoter may hold memory it is about to swap in.
	if m.promoter == nil {
		if used, want := m.budget.used(), held+int64(len(m.windows))*m.cs; used != want {
			return fmt.Errorf("budget in use %d, but chunks hold %d and %d windows %d", used, held, len(m.windows), int64(len(m.windows))*m.cs)
		}
	}
	return nil
}

// ForceNamedSpillFiles makes m create its spill files with the named
// fallback (create, then unlink), as where O_TMPFILE is not supported.
func ForceNamedSpillFiles(m *Manager) { m.arena.fs = namedFS{} }

type namedFS struct{}

func (namedFS) createTemp(dir, pattern string) (spillFile, error) {
	f, err := createNamed(dir, pattern)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

// debugStack returns the functions that called the faulty file system's
// operation, innermost first.
func debugStack() []byte {
	var pcs [8]uintptr
	n := runtime.Callers(4, pcs[:])
	fr := runtime.CallersFrames(pcs[:n])
	var out []byte
	for {
		f, more := fr.Next()
		out = append(out, (f.Function + " ")...)
		if !more {
			break
		}
	}
	return out
}

// ArenaSlack returns the bytes of slack in m's spill arena: granules
// charged to the disk budget (counted in DiskInUse) that no extent
// occupies, until a reclaim punches them out of the files.
func ArenaSlack(m *Manager) int64 { return m.arena.slack.Load() }

// DiskGranule returns the unit in which m's spill arena charges disk
// space: max(4 KiB, ChunkSize/64).
func DiskGranule(m *Manager) int64 { return m.arena.gran }

// ArenaCannotPunch reports whether m's spill arena found that its file
// system cannot punch holes: freed space then stays allocated until it is
// reused or cut off the end of a file.
func ArenaCannotPunch(m *Manager) bool { return m.arena.noPunch.Load() }

// ExtentCharge returns the most the extent of a block of n bytes (0 < n
// <= the chunk size), of the smallest class that holds n, may be charged
// to m's disk budget on its own: the granules it overlaps, at the worst
// place in its frame.
func ExtentCharge(m *Manager, n int64) int64 {
	a := m.arena
	size := a.classes[a.classOf(n)]
	var most int64
	for slot := range a.frame / size {
		lo, hi := slot*size/a.gran, ((slot+1)*size-1)/a.gran
		most = max(most, (hi-lo+1)*a.gran)
	}
	return most
}

// ReclaimArena punches all the slack of m's spill arena out of its files
// now, as an allocation refused by DiskBudget does.
func ReclaimArena(m *Manager) { m.arena.reclaim() }

// ArenaAllocated returns the bytes the file system has allocated to m's
// spill arena's segment files (fstat's st_blocks, in 512-byte units),
// holes punched out excluded.
func ArenaAllocated(m *Manager) (int64, error) {
	var total int64
	for i := range m.arena.segs {
		s := m.arena.segs[i].Load()
		if s == nil {
			continue
		}
		f, ok := s.f.(osFile)
		if !ok {
			return 0, fmt.Errorf("segment %d is not an *os.File", i)
		}
		n, err := allocatedBytes(f.File)
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// FreeChunkBytes returns the bytes of the chunks m keeps for reuse.
func FreeChunkBytes(m *Manager) int64 { return m.mem.chunks.Load() }

// Evict rolls b over as an eviction for another buffer's write does, a
// chunk at a time, calling done after each chunk with b's lock released;
// it returns the bytes moved and whether done reported true.
func Evict(b *Buffer, done func() bool) (int64, bool) {
	var events []SpillEvent
	ok, _ := b.s.m.evict(b.s, done, &events, false)
	b.s.m.deliver(events)
	var moved int64
	for _, ev := range events {
		moved += ev.Moved
	}
	return moved, ok
}

// HoldLock takes b's lock, as an operation in progress holds it, and
// returns the function that releases it.
func HoldLock(b *Buffer) (release func()) {
	b.s.mu.Lock()
	return b.s.mu.Unlock
}
