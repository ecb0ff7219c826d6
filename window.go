package spool

import "sync/atomic"

// The read window: a checked copy of one block of a buffer's spill.
//
// Spilled data is checked a whole block (a chunk, 64 KiB by default) at a
// time (spill.go), so a read of a few bytes of a spilled buffer reads and
// checks a whole block. Without a window, reading a spilled buffer in 4 KiB
// pieces (a bufio.Reader or a bufio.Scanner over it) read and checked every
// 64 KiB block 16 times, and in 512-byte pieces 128 times: 0.09× and 0.07×
// the speed of an *os.File. With it, each block is read and checked once, when the first
// small read reaches it, and the following small reads of that block copy
// from the window.
//
// A window is buffer memory, counted in the budget like chunks: it is taken
// only from the budget's free part (TryAcquire, never by rolling another
// buffer over), so that reading never costs a write. It is the first memory
// a write short of budget takes back (Manager.reclaimWindows): dropping a
// window is free, since its bytes are on disk. A buffer has at most one
// window; it is dropped whenever the buffer's content or the place of its
// bytes changes (a write, Truncate, a rollover, a promotion, Close), so it
// never holds other bytes than the file's for the ranges read from it.
//
// Locks (lock.go): store.winMu guards the window fields. Reads take it with
// store.mu held (for reading, by ReadAt, or writing), with TryLock, and
// read the file directly if it is busy, so ReadAt calls stay parallel;
// changes of the buffer drop the window with store.mu held for writing. A
// write short of memory in another buffer takes a window back with a
// TryLock of store.winMu alone, so that a read in progress on the buffer
// does not keep its window from the writer. Manager.mu, taken to list or
// unlist a window, comes after store.winMu.

// window is the read window of a store. The zero value is no window.
type window struct {
	buf  *[]byte     // a chunk of the Manager's memory; nil: no window
	off  int64       // offset of the block it holds, a multiple of the chunk size
	n    int         // bytes it holds: the block's bytes below fileSize
	held atomic.Bool // buf != nil; read without winMu, to skip it when unset
	idx  int         // 1 + index in Manager.windows, 0 if not there; guarded by Manager.mu
}

// readWindow reads fp, shorter than a block, at off (below fileSize) through
// the window, and reports whether it did. It does not when the window is
// busy or cannot be taken for want of free budget; the caller then reads
// the file directly. b.mu is held, for reading at least.
func (b *store) readWindow(fp []byte, off int64) (bool, error) {
	if !b.winMu.TryLock() {
		return false, nil
	}
	defer b.winMu.Unlock()
	w := &b.win
	for n := 0; n < len(fp); {
		pos := off + int64(n)
		boff := pos - pos%b.m.cs
		if w.buf == nil || w.off != boff || pos-boff >= int64(w.n) {
			if ok, err := b.fillWindow(boff); !ok {
				return false, err
			}
		}
		n += copy(fp[n:], (*w.buf)[pos-boff:w.n])
	}
	return true, nil
}

// fillWindow loads the block at boff into the window, taking the window
// first if b has none. It reports false if the budget has no room for one,
// and false with the error if the block cannot be read (ErrCorrupt, a disk
// error); the window is then dropped, so it never holds bytes unchecked.
// b.winMu is held.
func (b *store) fillWindow(boff int64) (bool, error) {
	w := &b.win
	if w.buf == nil {
		if !b.m.budget.tryAcquire(b.m.cs) {
			return false, nil
		}
		w.buf = b.m.mem.get(int(b.m.cs))
		w.held.Store(true)
		b.m.listWindow(b, true)
	}
	n := int(min(b.m.cs, b.fileSize-boff))
	if _, err := b.file.ReadAt((*w.buf)[:n], boff); err != nil {
		b.dropWindowLocked()
		return false, err
	}
	w.off, w.n = boff, n
	return true, nil
}

// dropWindow gives b's window, if it has one, back to the pool and the
// budget. b.mu is held for writing.
func (b *store) dropWindow() {
	if !b.win.held.Load() {
		return // no window: the usual case, without a lock
	}
	b.winMu.Lock()
	b.dropWindowLocked()
	b.winMu.Unlock()
}

// dropWindowLocked is dropWindow with b.winMu held.
func (b *store) dropWindowLocked() {
	w := &b.win
	if w.buf == nil {
		return
	}
	b.m.mem.put(w.buf)
	w.buf, w.off, w.n = nil, 0, 0
	w.held.Store(false)
	b.m.listWindow(b, false)
	b.m.budget.release(b.m.cs)
}

// listWindow adds b to the Manager's list of buffers with a window, or
// removes it.
func (m *Manager) listWindow(b *store, has bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case has && b.win.idx == 0:
		m.windows = append(m.windows, b)
		b.win.idx = len(m.windows)
	case !has && b.win.idx != 0:
		i, last := b.win.idx-1, len(m.windows)-1
		m.windows[i] = m.windows[last]
		m.windows[i].win.idx = i + 1
		m.windows[last] = nil
		m.windows = m.windows[:last]
		b.win.idx = 0
	}
	m.nwindows.Store(int64(len(m.windows)))
}

// reclaimWindows drops read windows that no read is using at this
// instant, until need bytes of the budget can be taken; it takes them and
// reports whether it did. It takes only the windows' own locks, with
// TryLock: a window is taken back even while its buffer is being read
// (the reads then go to the file), but not in the middle of a copy from it.
func (m *Manager) reclaimWindows(done func() bool) bool {
	skipped := 0
	for tries := m.nwindows.Load(); tries > 0; tries-- {
		m.mu.Lock()
		k := len(m.windows) - 1 - skipped
		if k < 0 {
			m.mu.Unlock()
			break
		}
		v := m.windows[k]
		m.mu.Unlock()
		if !v.winMu.TryLock() {
			skipped++
			continue
		}
		v.dropWindowLocked()
		v.winMu.Unlock()
		if done() {
			return true
		}
	}
	return false
}
